package pebblestore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// mountTmpfs is the package's helper (tmpfs_test.go).
var mountTmpfs = pebblestore.MountTmpfs

// logBuffer collects a store's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain every one of subs.
func (b *logBuffer) count(subs ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomPayload(t *testing.T, n int) []byte {
	p := make([]byte, n)
	_, err := rand.Read(p)
	require.NoError(t, err)
	return p
}

// returns runs fn with a 30 s context and fails the test if fn has not
// returned 5 s after that: a full disk must fail a call, never hang it
// until space comes back (which no test gives it meanwhile). A call that
// waits out its context instead fails the test by its error, which does
// not say the disk is full. The deadline is a guard, not a figure to meet;
// fn runs on a goroutine of its own (which a hung call leaves behind), so
// it must not call t's failing methods.
func returns(t *testing.T, what string, fn func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	guard := time.NewTimer(35 * time.Second)
	defer guard.Stop()
	select {
	case err := <-errc:
		return err
	case <-guard.C:
		t.Fatalf("%s hung: no return within 35 s", what)
		return nil
	}
}

// requireDiskFull checks the error a refused write gets: it says the disk
// is full, where, and that nothing was stored.
func requireDiskFull(t *testing.T, err error, store string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, mailbox.ErrDiskFull, "want a disk-full error, got: %v", err)
	var df *mailbox.DiskFullError
	require.ErrorAs(t, err, &df)
	assert.Equal(t, store, df.Path)
	assert.ErrorContains(t, err, "disk full")
	assert.ErrorContains(t, err, store)
	assert.ErrorContains(t, err, "nothing was stored")
}

// fillDisk writes a ballast file in dir until the file system is really
// full, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := randomPayload(t, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	for small := chunk[:512]; ; {
		if _, err := f.Write(small); err != nil {
			return path
		}
	}
}

// topUp fills whatever space appeared on dir's file system since the
// disk was filled, into a ballast file of its own (n names it).
func topUp(t *testing.T, dir string, n int) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("ballast-top-%d", n)))
	if err != nil {
		require.ErrorIs(t, err, syscall.ENOSPC)
		return
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// removeTopUps frees what topUp took.
func removeTopUps(t *testing.T, dir string) {
	t.Helper()
	tops, err := filepath.Glob(filepath.Join(dir, "ballast-top-*"))
	require.NoError(t, err)
	for _, p := range tops {
		require.NoError(t, os.Remove(p))
	}
}

func TestDiskFullSync(t *testing.T)    { testDiskFull(t, mailbox.DurabilitySync) }
func TestDiskFullRelaxed(t *testing.T) { testDiskFull(t, mailbox.DurabilityRelaxed) }

// testDiskFull runs a store on a real 48 MB tmpfs and sends 60 KB
// incompressible payloads until the disk fills: every send fails at once
// with a disk-full error naming the store (never a hang, never an engine
// panic, which would kill this test binary), actors can still commit,
// the engine's retries do not flood the log, the store recovers by itself
// once space is freed, closes promptly, and no acknowledged message is
// lost.
func testDiskFull(t *testing.T, durability mailbox.Durability) {
	mnt := mountTmpfs(t, "48m")
	store := filepath.Join(mnt, "store")
	// Space an operator frees later, taken from the start.
	spare := filepath.Join(mnt, "spare")
	require.NoError(t, os.WriteFile(spare, randomPayload(t, 16<<20), 0o600))
	logs := &logBuffer{}
	opts := mailbox.Options{Durability: durability, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	s, err := pebblestore.Open(store, opts)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	_, err = s.Register(ctx, "a", "counter")
	require.NoError(t, err)
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)

	// Send until the disk is full.
	var acked []string
	var refusal error
	for i := 0; refusal == nil; i++ {
		require.Less(t, i, 2000, "48 MB never filled")
		id, payload := fmt.Sprintf("m%d", i), randomPayload(t, 60<<10)
		refusal = returns(t, "a send", func(ctx context.Context) error {
			_, err := s.Enqueue(ctx, "a", mailbox.Message{ID: id, Payload: payload})
			return err
		})
		if refusal == nil {
			acked = append(acked, id)
		}
	}
	requireDiskFull(t, refusal, store)
	t.Logf("%d sends acknowledged before the disk was full: %v", len(acked), refusal)
	// A commit is admitted with less headroom than a send; whether it
	// still fits depends on what the engine's flushes took meanwhile, but
	// it never hangs and never fails otherwise.
	ms, err := s.Read(ctx, "a", 0, 10)
	require.NoError(t, err)
	err = returns(t, "a commit", func(ctx context.Context) error {
		return s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Through: ms[len(ms)-1].Seq,
			State: &mailbox.State{Schema: 1, Data: []byte("10")}})
	})
	if err != nil {
		requireDiskFull(t, err, store)
	} else {
		ms, err = s.Read(ctx, "a", 0, 10)
		require.NoError(t, err)
	}

	// Now fill the disk to the last byte from outside the store. The
	// engine may still delete a file it no longer needs (the inputs of a
	// compaction that was running), which truly frees space; so the disk
	// is topped up again before each send, and a send that found room is
	// counted as acknowledged rather than as a failure.
	ballast := fillDisk(t, mnt)
	refused := 0
	for i := 0; i < 20; i++ {
		topUp(t, mnt, i)
		id, payload := fmt.Sprintf("late-%d", i), randomPayload(t, 60<<10)
		err := returns(t, "a send on a full disk", func(ctx context.Context) error {
			_, err := s.Enqueue(ctx, "a", mailbox.Message{ID: id, Payload: payload})
			return err
		})
		if err == nil {
			acked = append(acked, id)
			continue
		}
		requireDiskFull(t, err, store)
		refused++
	}
	require.GreaterOrEqual(t, refused, 15, "sends on a full disk were accepted")
	err = returns(t, "a commit on a full disk", func(ctx context.Context) error {
		return s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Through: ms[0].Seq})
	})
	requireDiskFull(t, err, store)
	err = returns(t, "a claim on a full disk", func(ctx context.Context) error {
		_, err := s.Claim(ctx, "a")
		return err
	})
	require.NoError(t, err, "a claim writes nothing, so an actor can restart on a full disk")

	// The engine retries its flushes and compactions; the log says so in
	// a few lines, not thousands. Over a 3 s window (a measurement, not a
	// wait for a condition), allow the first line and a couple of summaries.
	before := logs.count("background work failed")
	time.Sleep(3 * time.Second)
	assert.LessOrEqual(t, logs.count("background work failed")-before, 2, "log flood:\n%.3000s", logs.String())
	assert.LessOrEqual(t, strings.Count(logs.String(), "\n"), 40, "too many log lines on a full disk:\n%.3000s", logs.String())

	// Free the space: sends succeed again by themselves.
	require.NoError(t, os.Remove(ballast))
	require.NoError(t, os.Remove(spare))
	removeTopUps(t, mnt)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Enqueue(ctx, "a", mailbox.Message{ID: "after", Payload: []byte("small")})
		if err == nil {
			acked = append(acked, "after")
			break
		}
		requireDiskFull(t, err, store)
		require.True(t, time.Now().Before(deadline), "sends still refused 30 s after space was freed: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	err = returns(t, "close", func(context.Context) error { return s.Close() })
	require.NoError(t, err)

	// Nothing acknowledged was lost.
	s2, err := pebblestore.Open(store, opts)
	require.NoError(t, err)
	defer s2.Close()
	for _, id := range acked {
		_, err := s2.Lookup(ctx, "a", id)
		require.NoError(t, err, "acknowledged message %s lost", id)
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("late-%d", i)
		if slices.Contains(acked, id) {
			continue
		}
		_, err = s2.Lookup(ctx, "a", id)
		require.True(t, errors.Is(err, mailbox.ErrUnknownMessage), "a refused send %s was stored: %v", id, err)
	}
}

// TestOpenOnAFullDisk: a store killed with kill -9 on a real tmpfs, which
// is then filled (to the byte, or but for 2 MB, less than the headroom a
// store keeps plus its logs to replay): Open fails at once with a
// disk-full error, instead of failing halfway on an ENOSPC or waiting on
// the engine's replay until space is freed, and once space is freed it
// opens with every acknowledged message.
func TestOpenOnAFullDisk(t *testing.T) {
	for _, left := range []int{0, 2 << 20} {
		t.Run(fmt.Sprintf("%d bytes left", left), func(t *testing.T) {
			mnt := mountTmpfs(t, "32m")
			dir := filepath.Join(mnt, "store")
			cmd, sc, _ := startChild(t, "wal", dir, false)
			for sc.Scan() && sc.Text() != "done" {
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			ballast := fillDisk(t, mnt)
			if left > 0 {
				fi, err := os.Stat(ballast)
				require.NoError(t, err)
				require.NoError(t, os.Truncate(ballast, fi.Size()-int64(left)))
			}
			err := returns(t, "an open on a full disk", func(context.Context) error {
				s, err := pebblestore.Open(dir, mailbox.Options{})
				if err == nil {
					s.Close()
				}
				return err
			})
			requireDiskFull(t, err, dir)

			require.NoError(t, os.Remove(ballast))
			requireAllMessages(t, dir)
		})
	}
}
