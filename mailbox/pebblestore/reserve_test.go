package pebblestore

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// fillFS writes a ballast file until the file system is full to the byte.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return path
}

// TestReserveSavesALogWriteOnAFullDisk: another process fills a real tmpfs
// to the last byte; a write-ahead log write through guardFS still
// succeeds, on the store's reserve (without it, the ENOSPC would stop the
// engine), while a flush's table file is held back; once space returns the
// reserve is taken again.
func TestReserveSavesALogWriteOnAFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "8m")
	sp := newSpace(mnt, vfs.Default, slog.New(slog.DiscardHandler))
	require.True(t, sp.reserve.hold())
	ballast := fillFS(t, mnt)

	closing := make(chan struct{})
	g := &guardFS{FS: vfs.Default, space: sp, closing: closing}
	log, err := g.Create(filepath.Join(mnt, "000009.log"), "pebble-wal")
	require.NoError(t, err)
	n, err := log.Write(make([]byte, 256<<10))
	require.NoError(t, err, "a log write on a full disk")
	require.Equal(t, 256<<10, n)
	require.NoError(t, log.Close())
	require.False(t, sp.reserve.holding(), "the reserve was used")

	close(closing) // no pause before the refusal
	_, err = g.Create(filepath.Join(mnt, "000010.sst"), "pebble-memtable-flush")
	require.ErrorIs(t, err, syscall.ENOSPC, "a flush on a full disk is held back")

	require.NoError(t, os.Remove(ballast))
	release, err := sp.admit(tierSend, 100)
	require.NoError(t, err)
	release()
	require.True(t, sp.reserve.holding(), "the reserve is taken again once space returns")
}
