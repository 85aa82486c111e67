package upgrade_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// sender streams numbered messages to every actor until stopped, and
// records what each actor was sent, in order.
type sender struct {
	s    *system
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent map[string][]string
	n    atomic.Int64
}

func startSender(t *testing.T, s *system) *sender {
	sd := &sender{s: s, stop: make(chan struct{}), sent: map[string][]string{}}
	for _, a := range s.actors {
		sd.wg.Add(1)
		go func(a string) {
			defer sd.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-sd.stop:
					return
				default:
				}
				p := fmt.Sprintf("%s-%d", a, i)
				if _, err := s.core.Send(context.Background(), a, []byte(p), core.SendOptions{ID: p}); err != nil {
					t.Errorf("send %s: %v", p, err)
					return
				}
				sd.mu.Lock()
				sd.sent[a] = append(sd.sent[a], p)
				sd.mu.Unlock()
				sd.n.Add(1)
			}
		}(a)
	}
	return sd
}

func (sd *sender) finish() map[string][]string {
	close(sd.stop)
	sd.wg.Wait()
	return sd.sent
}

// checkExactlyOnce: every actor applied exactly what it was sent, in order.
func checkExactlyOnce(t *testing.T, s *system, sent map[string][]string) {
	t.Helper()
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return s.drained(s.actors...) })
	for _, a := range s.actors {
		st := s.state(t, a)
		require.Equal(t, sent[a], st.Applied, "actor %s: lost, duplicated or reordered messages", a)
		require.Equal(t, len(sent[a]), st.Count, "actor %s: count carried over", a)
	}
}

func TestUpgradeUnderSteadyStream(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 4, upgrade.Options{GroupSize: 2})
	sd := startSender(t, s)
	waitFor(t, 20*time.Second, "traffic on v1", func() bool { return sd.n.Load() > 200 })
	install(t, "kv2", s.source)
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", "")
	require.NoError(t, err)
	assert.Equal(t, "completed", rec.Outcome)
	assert.Contains(t, rec.From, "1.0.0")
	assert.Contains(t, rec.To, "2.0.0")
	sentAt := sd.n.Load()
	waitFor(t, 20*time.Second, "traffic on v2", func() bool { return sd.n.Load() > sentAt+200 })
	sent := sd.finish()
	checkExactlyOnce(t, s, sent)
	for _, a := range s.actors {
		st := s.state(t, a)
		assert.EqualValues(t, 2, st.Schema, "actor %s migrated", a)
		assert.Equal(t, "2.0.0", st.Module)
	}
	reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("hello"), core.SendOptions{})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(reply), "v2:"), "served by v2: %s", reply)
	hist := s.history(t)
	require.Len(t, hist, 1)
	pauses := 0
	for _, st := range hist[0].Steps {
		if st.Step == "pause" {
			pauses++
		}
	}
	assert.Equal(t, 4, pauses, "the history has every actor's pause")
	cur, _ := s.mgr.Current("kv")
	assert.Equal(t, "2.0.0", cur.Code)
}

// A migration that errors, panics or hangs leaves every actor on the old
// version with its state untouched, and v1 keeps serving.
func TestFailedMigrationRollsBackByItself(t *testing.T) {
	for _, fault := range []string{"kv2-error", "kv2-panic", "kv2-hang"} {
		t.Run(fault, func(t *testing.T) {
			dir := t.TempDir()
			install(t, "kv1", dir+"/kv")
			s := boot(t, dir, 3, upgrade.Options{MigrateTimeout: time.Second})
			for _, a := range s.actors {
				_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("before"), core.SendOptions{})
				require.NoError(t, err)
			}
			install(t, fault, s.source)
			rec, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
			require.Error(t, err)
			assert.Equal(t, "failed", rec.Outcome)
			for _, a := range s.actors {
				st := s.state(t, a)
				assert.EqualValues(t, 1, st.Schema, "actor %s keeps its schema", a)
				assert.Equal(t, "1.0.0", st.Module)
				assert.Equal(t, []string{"before"}, st.Applied)
				reply, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("after"), core.SendOptions{})
				require.NoError(t, err)
				assert.Equal(t, "v1:2", string(reply), "v1 keeps serving")
			}
			cur, _ := s.mgr.Current("kv")
			assert.Equal(t, "1.0.0", cur.Code)
		})
	}
}

// A binary that is not a plugin, is truncated, or is another behaviour is
// refused with a clear error, and the old version keeps serving.
func TestBadBinaryIsRefused(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 1, upgrade.Options{})
	kv2, err := os.ReadFile(bin("kv2"))
	require.NoError(t, err)
	cases := map[string]func(path string){
		"not a plugin": func(p string) { require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755)) },
		"truncated":    func(p string) { require.NoError(t, os.WriteFile(p, kv2[:len(kv2)/2], 0o755)) },
		"other behaviour": func(p string) {
			b, err := os.ReadFile(bin("counter"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o755))
		},
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			p := dir + "/bad-" + strings.ReplaceAll(name, " ", "-")
			write(p)
			_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", p)
			require.Error(t, err)
			assert.ErrorContains(t, err, "upgrade of \"kv\"")
			reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("x"), core.SendOptions{})
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(reply), "v1:"))
		})
	}
	_, err = s.mgr.Upgrade(ctxFor(t, 10*time.Second), "kv", "")
	assert.ErrorIs(t, err, upgrade.ErrSameBinary, "the same bytes are not an upgrade")
}

// Rollback moves the actors back with the newer module's down-migration,
// from the cached old binary even after the source was overwritten.
func TestRollbackAfterSourceOverwritten(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 3, upgrade.Options{})
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("one"), core.SendOptions{})
		require.NoError(t, err)
	}
	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.source, []byte("garbage"), 0o755))
	rec, err := s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.NoError(t, err)
	assert.Equal(t, "rollback", rec.Kind)
	for _, a := range s.actors {
		st := s.state(t, a)
		assert.EqualValues(t, 1, st.Schema)
		assert.Equal(t, "1.0.0", st.Module)
		assert.Equal(t, []string{"one"}, st.Applied)
		reply, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("two"), core.SendOptions{})
		require.NoError(t, err)
		assert.Equal(t, "v1:2", string(reply))
	}
}

func TestRollbackRefusedWithoutDownMigration(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{})
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("one"), core.SendOptions{})
		require.NoError(t, err)
	}
	install(t, "kv2-nodown", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.ErrorIs(t, err, upgrade.ErrCannotMigrate)
	assert.ErrorContains(t, err, "cannot migrate it to schema 1")
	for _, a := range s.actors {
		assert.EqualValues(t, 2, s.state(t, a).Schema, "actors stay on v2")
	}
	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "nothing")
	assert.Error(t, err)
}

// Upgrades of one behaviour are serialized: a second request during one is
// refused, naming the running upgrade.
func TestConcurrentUpgradeIsRefused(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	// No pause budget: the hanging migration holds the op for 3 s.
	s := boot(t, dir, 1, upgrade.Options{MigrateTimeout: 3 * time.Second, MaxPause: -1})
	_, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("one"), core.SendOptions{})
	require.NoError(t, err)
	install(t, "kv2-hang", s.source)
	done := make(chan error, 1)
	go func() { _, err := s.mgr.Upgrade(context.Background(), "kv", ""); done <- err }()
	waitFor(t, 10*time.Second, "the first upgrade to be migrating", func() bool {
		op, running := s.mgr.Running("kv")
		return running && op.To.Code != ""
	})
	_, busy := s.mgr.Upgrade(context.Background(), "kv", bin("kv2"))
	assert.ErrorIs(t, busy, upgrade.ErrBusy)
	assert.ErrorContains(t, busy, "upgrade of \"kv\" from 1.0.0")
	require.Error(t, <-done, "the hanging migration fails the first upgrade")
}

// The watcher upgrades when the binary is rebuilt; a broken rebuild is
// ignored and the old version keeps serving; the same bytes do nothing.
func TestWatcherUpgradesOnRebuild(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{Debounce: 100 * time.Millisecond})
	require.NoError(t, s.mgr.Watch(ctxFor(t, 2*time.Minute)))
	require.NoError(t, os.WriteFile(s.source, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	waitFor(t, 20*time.Second, "the broken rebuild to be refused", func() bool { return len(s.history(t)) == 1 })
	assert.Equal(t, "failed", s.history(t)[0].Outcome)
	reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("x"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v1:1", string(reply))

	install(t, "kv2", s.source)
	waitFor(t, 20*time.Second, "the upgrade", func() bool { return len(s.history(t)) == 2 })
	assert.Equal(t, "completed", s.history(t)[1].Outcome)
	reply, err = s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("y"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v2:2", string(reply))
}

// 100 alternating upgrade/rollback cycles leak no process, goroutine or
// file descriptor.
func TestUpgradeRollbackCyclesLeakNothing(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 4, upgrade.Options{})
	ctx := ctxFor(t, 5*time.Minute)
	for _, a := range s.actors {
		_, err := s.core.Call(ctx, a, []byte("warm"), core.SendOptions{})
		require.NoError(t, err)
	}
	_, err := s.mgr.Upgrade(ctx, "kv", bin("kv2"))
	require.NoError(t, err)
	_, err = s.mgr.Rollback(ctx, "kv")
	require.NoError(t, err)
	procs, goroutines, fds := len(testbin.Children()), runtime.NumGoroutine(), testbin.CountFDs()
	cycles := 50 // 50 upgrades + 50 rollbacks
	if testing.Short() {
		cycles = 5
	}
	for i := 0; i < cycles; i++ {
		_, err := s.mgr.Upgrade(ctx, "kv", bin("kv2"))
		require.NoError(t, err, "cycle %d", i)
		_, err = s.mgr.Rollback(ctx, "kv")
		require.NoError(t, err, "cycle %d", i)
	}
	for i, a := range s.actors {
		reply, err := s.core.Call(ctx, a, []byte("end"), core.SendOptions{})
		require.NoError(t, err)
		assert.Equal(t, "v1:2", string(reply), "actor %d", i)
	}
	waitFor(t, 10*time.Second, "processes, goroutines and fds to settle", func() bool {
		return len(testbin.Children()) <= procs && runtime.NumGoroutine() <= goroutines+2 && testbin.CountFDs() <= fds
	})
	assert.Len(t, s.history(t), 2+2*cycles)
}

var _ = mailbox.OutcomeApplied

// An upgrade that fails part-way leaves the actors already moved on the
// new version and the rest on the old, each consistent, both versions
// serving, and so after a restart too; with RollbackOnFailure the moved
// actors go back.
func TestPartialUpgradeStaysConsistent(t *testing.T) {
	for _, rollback := range []bool{false, true} {
		t.Run(fmt.Sprintf("rollback-on-failure=%v", rollback), func(t *testing.T) {
			dir := t.TempDir()
			install(t, "kv1", dir+"/kv")
			opts := upgrade.Options{GroupSize: 1, RollbackOnFailure: rollback}
			s := boot(t, dir, 4, opts)
			for _, a := range s.actors {
				payload := "one"
				if a == "kv2" {
					payload = "nomigrate"
				}
				_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte(payload), core.SendOptions{})
				require.NoError(t, err)
			}
			rec, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", bin("kv2-marked"))
			require.Error(t, err)
			assert.ErrorContains(t, err, "marked not to migrate")
			want := map[string]string{"kv0": "v2", "kv1": "v2", "kv2": "v1", "kv3": "v1"}
			if rollback {
				assert.Equal(t, "rolled back", rec.Outcome)
				want = map[string]string{"kv0": "v1", "kv1": "v1", "kv2": "v1", "kv3": "v1"}
			}
			check := func(s *system, n int) {
				for _, a := range s.actors {
					reply, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("more"), core.SendOptions{})
					require.NoError(t, err, "actor %s serves", a)
					assert.Equal(t, fmt.Sprintf("%s:%d", want[a], n), string(reply), "actor %s", a)
					wantSchema := uint32(1)
					if want[a] == "v2" {
						wantSchema = 2
					}
					assert.Equal(t, wantSchema, s.state(t, a).Schema, "actor %s", a)
				}
			}
			check(s, 2)
			s.stop()
			s = boot(t, dir, 4, opts)
			check(s, 3)
		})
	}
}
