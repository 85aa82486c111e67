package pebblestore_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// filledStore makes a closed store holding one queued message, flushed to a
// table file as well as logged.
func filledStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := pebblestore.Open(dir, mailbox.Options{})
	require.NoError(t, err)
	_, err = s.Register(context.Background(), "a", "b")
	require.NoError(t, err)
	_, err = s.Enqueue(context.Background(), "a", mailbox.Message{Payload: []byte("keep me")})
	require.NoError(t, err)
	require.NoError(t, s.Compact(context.Background()))
	require.NoError(t, s.Close())
	return dir
}

// scribble flips every byte of a file.
func scribble(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for i := range b {
		b[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func matching(t *testing.T, dir, prefix string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) || strings.HasSuffix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	require.NotEmpty(t, names, "no %s file in %s", prefix, dir)
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1])
}

// TestCorruptStoreIsReported damages the store's files in several ways:
// each open fails with one CorruptError naming the path, never a panic; and
// nothing stored is lost: once the damaged file is restored (from a backup,
// say) the store opens with its message intact.
func TestCorruptStoreIsReported(t *testing.T) {
	truncate := func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.NoError(t, os.Truncate(path, fi.Size()/2))
	}
	remove := func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) }
	cases := []struct {
		name   string
		file   string // prefix or suffix of the file to damage
		damage func(t *testing.T, path string)
	}{
		{"scribbled manifest", "MANIFEST-", scribble},
		{"missing manifest", "MANIFEST-", remove},
		{"scribbled table", ".sst", scribble},
		{"truncated table", ".sst", truncate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filledStore(t)
			path := matching(t, dir, tc.file)
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			tc.damage(t, path)
			s, err := pebblestore.Open(dir, mailbox.Options{})
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened without error")
			}
			assert.ErrorIs(t, err, mailbox.ErrCorrupt)
			assert.ErrorContains(t, err, dir, "the error names the store")
			// The lock was released and the failure is stable.
			_, err = pebblestore.Open(dir, mailbox.Options{})
			require.ErrorIs(t, err, mailbox.ErrCorrupt)

			require.NoError(t, os.WriteFile(path, orig, 0o600))
			s, err = pebblestore.Open(dir, mailbox.Options{})
			require.NoError(t, err, "the store opens once the damaged file is restored")
			defer s.Close()
			ms, err := s.Read(context.Background(), "a", 0, 10)
			require.NoError(t, err)
			require.Len(t, ms, 1, "the failed opens lost the stored message")
			assert.Equal(t, "keep me", string(ms[0].Payload))
		})
	}
}

// TestForeignStoreIsRefused: an engine directory that graft did not write is
// not silently adopted.
func TestForeignStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("someone else's"), []byte("data"), pebble.Sync))
	require.NoError(t, db.Close())
	_, err = pebblestore.Open(dir, mailbox.Options{})
	require.ErrorIs(t, err, mailbox.ErrCorrupt)
	assert.ErrorContains(t, err, "no graft format marker")
}

// TestStorePathIsAFile: a store path that is a file gets a clear error.
func TestStorePathIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	_, err := pebblestore.Open(f, mailbox.Options{})
	require.Error(t, err)
	assert.ErrorContains(t, err, f)
}
