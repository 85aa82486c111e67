package pebblestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// walMessages is how many acknowledged 1 KiB messages the WAL tests write:
// enough for the engine to rotate its log at least once (its first
// memtables are small), not so many that it starts reusing old logs.
const walMessages = 320

// runWALChild enqueues walMessages messages with ids m0, m1, ..., says
// "done" and waits to be killed (kill -9: no clean shutdown).
func runWALChild() {
	s, err := pebblestore.Open(os.Getenv(envDir), mailbox.Options{})
	if err != nil {
		out("error %v", err)
		return
	}
	ctx := context.Background()
	if _, err := s.Register(ctx, "a", "counter"); err != nil {
		out("error %v", err)
		return
	}
	out("ready")
	for i := 0; i < walMessages; i++ {
		p := make([]byte, 1024)
		_, _ = rand.Read(p)
		if _, err := s.Enqueue(ctx, "a", mailbox.Message{ID: fmt.Sprintf("m%d", i), Payload: p}); err != nil {
			out("error %v", err)
			return
		}
	}
	out("done")
	select {}
}

// writeWALStore writes walMessages acknowledged messages into a new store
// and leaves it either closed cleanly or killed with kill -9.
func writeWALStore(t *testing.T, clean bool) string {
	t.Helper()
	dir := t.TempDir()
	if clean {
		s, err := pebblestore.Open(dir, mailbox.Options{})
		require.NoError(t, err)
		ctx := context.Background()
		_, err = s.Register(ctx, "a", "counter")
		require.NoError(t, err)
		for i := 0; i < walMessages; i++ {
			_, err := s.Enqueue(ctx, "a", mailbox.Message{ID: fmt.Sprintf("m%d", i), Payload: randomPayload(t, 1024)})
			require.NoError(t, err)
		}
		require.NoError(t, s.Close())
		return dir
	}
	cmd, sc, _ := startChild(t, "wal", dir, false)
	done := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if line := sc.Text(); line == "done" || strings.HasPrefix(line, "error") {
				done <- line
				return
			}
		}
		close(done)
	}()
	select {
	case line := <-done:
		require.Equal(t, "done", line)
	case <-time.After(60 * time.Second):
		t.Fatal("the child did not write its messages within 60 s")
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	return dir
}

// copyStore copies a closed store's folder, so every damage starts from
// the same bytes.
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600))
	}
	return dst
}

// walFiles lists the store's logs, oldest first.
func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	require.NotEmpty(t, out, "no write-ahead log in %s", dir)
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// biggestWAL is the log holding the most bytes.
func biggestWAL(t *testing.T, dir string) string {
	best := ""
	for _, w := range walFiles(t, dir) {
		if best == "" || fileSize(t, filepath.Join(dir, w)) > fileSize(t, filepath.Join(dir, best)) {
			best = w
		}
	}
	return best
}

// flip xors n bytes of a file from offset off, as dd conv=notrunc would
// overwrite them.
func flip(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	for i := range b {
		b[i] ^= 0xff
	}
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(b)
	require.NoError(t, err)
}

// requireAllMessages opens the store and checks every acknowledged message.
func requireAllMessages(t *testing.T, dir string) {
	t.Helper()
	s, err := pebblestore.Open(dir, mailbox.Options{})
	require.NoError(t, err, "the store must open")
	defer s.Close()
	ms, err := s.Read(context.Background(), "a", 0, 1<<20)
	require.NoError(t, err)
	require.Len(t, ms, walMessages, "acknowledged messages were lost")
	for i, m := range ms {
		require.Equal(t, fmt.Sprintf("m%d", i), m.ID)
	}
}

// requireRefused opens the damaged store: it must fail with one
// CorruptError naming the store and the damaged file, the same way twice
// (the failed open changed nothing).
func requireRefused(t *testing.T, dir, file string) {
	t.Helper()
	for attempt := 0; attempt < 2; attempt++ {
		s, err := pebblestore.Open(dir, mailbox.Options{})
		if err == nil {
			s.Close()
			t.Fatalf("a store with a damaged write-ahead log opened (attempt %d)", attempt+1)
		}
		require.ErrorIs(t, err, mailbox.ErrCorrupt)
		assert.ErrorContains(t, err, dir, "the error names the store")
		assert.ErrorContains(t, err, file, "the error names the damaged file")
		assert.NotContains(t, err.Error(), "format marker", "a misleading reason")
		t.Logf("refused: %v", err)
	}
}

// restore puts a saved file back (or removes it if it did not exist).
func restore(t *testing.T, path string, orig []byte, existed bool) {
	t.Helper()
	if !existed {
		require.NoError(t, os.Remove(path))
		return
	}
	require.NoError(t, os.WriteFile(path, orig, 0o600))
}

type walDamage struct {
	name   string
	target func(t *testing.T, dir string) string // which log
	damage func(t *testing.T, path string)
}

func newestWAL(t *testing.T, dir string) string { w := walFiles(t, dir); return w[len(w)-1] }
func oldestWAL(t *testing.T, dir string) string { return walFiles(t, dir)[0] }

// TestCleanShutdownThenDamagedWALIsRefused: after a clean shutdown the
// logs hold no torn write, so any change to one is damage: a byte written
// into the newest log as in the issue (dd seek=50000 conv=notrunc), bytes
// flipped in the middle of the log holding the data, a truncated log, a
// deleted older log. Each open fails naming the file, and once the file
// is restored the store opens with every message.
func TestCleanShutdownThenDamagedWALIsRefused(t *testing.T) {
	base := writeWALStore(t, true)
	t.Logf("logs after a clean shutdown: %v", walFiles(t, base))
	cases := []walDamage{
		{"byte written at 50000 of the newest log", newestWAL, func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte{0xff}, 50000)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"byte flipped in the middle of the biggest log", biggestWAL, func(t *testing.T, path string) {
			flip(t, path, fileSize(t, path)/2, 1)
		}},
		{"64 bytes flipped in the biggest log", biggestWAL, func(t *testing.T, path string) {
			flip(t, path, fileSize(t, path)/3, 64)
		}},
		{"biggest log truncated", biggestWAL, func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, fileSize(t, path)/2))
		}},
		{"newest log truncated to nothing", newestWAL, func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 0))
		}},
		{"oldest log deleted", oldestWAL, func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyStore(t, base)
			file := tc.target(t, dir)
			path := filepath.Join(dir, file)
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			if tc.name == "newest log truncated to nothing" && len(orig) == 0 {
				t.Skip("the newest log is already empty")
			}
			tc.damage(t, path)
			requireRefused(t, dir, file)
			restore(t, path, orig, true)
			requireAllMessages(t, dir)
		})
	}
}

// TestCrashThenTornTailOpens: after kill -9 the newest log may end in a
// torn write (garbage or zeros after the last record); the store opens and
// keeps every acknowledged message.
func TestCrashThenTornTailOpens(t *testing.T) {
	base := writeWALStore(t, false)
	t.Logf("logs after kill -9: %v", walFiles(t, base))
	tails := map[string]func(t *testing.T) []byte{
		"as left":               func(*testing.T) []byte { return nil },
		"garbage after the end": func(t *testing.T) []byte { return randomPayload(t, 700) },
		"zeros after the end":   func(*testing.T) []byte { return make([]byte, 40<<10) },
		"a half-written chunk header": func(*testing.T) []byte {
			return []byte{0x12, 0x34, 0x56, 0x78, 0x00, 0x04, 9}
		},
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := copyStore(t, base)
			appendBytes(t, filepath.Join(dir, newestWAL(t, dir)), tail(t))
			requireAllMessages(t, dir)
		})
	}
}

// TestCrashThenDamagedWALIsRefused: after kill -9, damage in the newest log
// that is followed by synced records is not a torn write: the store refuses
// to open, naming the log, instead of dropping what follows. Damage in the
// last 32 KiB block is the case the engine alone misses. A deleted older
// log is named too.
func TestCrashThenDamagedWALIsRefused(t *testing.T) {
	base := writeWALStore(t, false)
	logs := walFiles(t, base)
	t.Logf("logs after kill -9: %v", logs)
	cases := []walDamage{
		{"byte flipped in the middle of the newest log", newestWAL, func(t *testing.T, path string) {
			flip(t, path, fileSize(t, path)/2, 1)
		}},
		{"64 bytes flipped in the newest log", newestWAL, func(t *testing.T, path string) {
			flip(t, path, fileSize(t, path)/3, 64)
		}},
		{"byte flipped in the last block of the newest log", newestWAL, func(t *testing.T, path string) {
			size := fileSize(t, path)
			lastBlock := (size - 1) / (32 << 10) * (32 << 10)
			require.GreaterOrEqual(t, size-lastBlock, int64(4000),
				"the last block holds too little to test damage inside it: change walMessages")
			off := lastBlock + 40
			t.Logf("flip at %d of %d (last block starts at %d)", off, size, lastBlock)
			flip(t, path, off, 1)
		}},
	}
	require.Greater(t, len(logs), 1, "the test needs an older log: change walMessages")
	cases = append(cases, walDamage{"oldest log deleted", oldestWAL, func(t *testing.T, path string) {
		require.NoError(t, os.Remove(path))
	}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyStore(t, base)
			file := tc.target(t, dir)
			path := filepath.Join(dir, file)
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			tc.damage(t, path)
			requireRefused(t, dir, file)
			restore(t, path, orig, true)
			requireAllMessages(t, dir)
		})
	}
}

// TestCrashThenDamagedOlderWAL: damage in the middle of an older log after
// kill -9 either costs nothing (the engine had flushed that log to a table
// file, and never reads it again) or is refused naming the log; never an
// open that drops what the log held.
func TestCrashThenDamagedOlderWAL(t *testing.T) {
	base := writeWALStore(t, false)
	require.Greater(t, len(walFiles(t, base)), 1, "the test needs an older log: change walMessages")
	dir := copyStore(t, base)
	file := oldestWAL(t, dir)
	path := filepath.Join(dir, file)
	flip(t, path, fileSize(t, path)/2, 1)
	s, err := pebblestore.Open(dir, mailbox.Options{})
	if err != nil {
		requireRefused(t, dir, file)
		return
	}
	require.NoError(t, s.Close())
	t.Log("the damaged log had been flushed: nothing depends on it")
	requireAllMessages(t, dir)
}

// TestCleanShutdownMarkerIsRemovedOnOpen: the marker lives only while the
// store is closed; a crash after an open is recovered as a crash.
func TestCleanShutdownMarkerIsRemovedOnOpen(t *testing.T) {
	dir := writeWALStore(t, true)
	_, err := os.Stat(filepath.Join(dir, "graft-clean.json"))
	require.NoError(t, err, "a clean close leaves the marker")
	s, err := pebblestore.Open(dir, mailbox.Options{})
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "graft-clean.json"))
	require.ErrorIs(t, err, os.ErrNotExist, "an open store has no clean-shutdown marker")
	require.NoError(t, s.Close())
}
