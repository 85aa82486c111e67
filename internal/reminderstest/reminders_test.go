// Package reminderstest_test runs the reminders example end to end in
// process: a real core on a real pebble store, the real reminder plugin
// binary, a virtual behaviour with no actor listed. The first call to
// reminder/alice creates the actor; its timer re-arms itself tick after
// tick; the core is shut down and a new one started on the same store,
// and the reminder goes on ticking from the count it had, with one chain
// of ticks, not two.
package reminderstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// Generous deadlines: the test waits on conditions, and a loaded 2-core
// machine running -race may be slow, never wrong.
const (
	waitLong  = 2 * time.Minute
	waitShort = 30 * time.Second
)

// alice is the virtual actor the test talks to; no config lists it.
const alice = "reminder/alice"

// period is the reminder's period: short, so that ticks come quickly, and
// long beside a status call, so that a status and a list of timers taken
// one after the other usually agree.
const period = 250 * time.Millisecond

// plugins holds the built reminder binary (TestMain).
var plugins string

func TestMain(m *testing.M) {
	testbin.Main(m, "graft-reminders-", &plugins, testbin.Pkgs("../../examples/reminders/reminder")...)
}

// status mirrors the reminder's status reply (examples/reminders/reminder).
type status struct {
	Text    string  `json:"text"`
	Seconds float64 `json:"seconds"`
	Count   int     `json:"count"`
	Timer   string  `json:"timer"`
}

// rig is a core with the example's config: the behaviour reminder, virtual,
// and no actor listed.
type rig struct {
	store string // the pebble store's folder, kept across restarts
	cfg   core.Config
	core  *core.Core
}

func TestReminderKeepsFiringAcrossARestart(t *testing.T) {
	r := newRig(t)
	r.start(t)
	ctx := ctxFor(t, 5*time.Minute)

	// Nothing of alice exists before its first message.
	_, err := r.core.Store().Actor(ctx, alice)
	require.ErrorIs(t, err, mailbox.ErrUnknownActor, "alice before its first message")
	none, err := r.core.Timers(ctx, alice)
	require.NoError(t, err, "a virtual actor not yet made has no timers, and no error")
	assert.Empty(t, none)

	every := fmt.Sprintf(`{"kind":"every","seconds":%g,"text":"stand up"}`, period.Seconds())
	first := r.call(t, every, "every-1")
	assert.Equal(t, "stand up", first.Text)
	assert.Zero(t, first.Count)
	require.NotEmpty(t, first.Timer, "every replies the pending tick's id")
	a, err := r.core.Store().Actor(ctx, alice)
	require.NoError(t, err, "the first call made alice")
	assert.Equal(t, mailbox.OriginVirtual, a.Origin)
	assert.Equal(t, "reminder", a.Behaviour)

	before := r.waitCount(t, 3, "three ticks before the restart")
	r.waitOnePending(t)
	assert.NotEqual(t, first.Timer, before.Timer, "each tick re-arms with a timer of its own")

	// Shut the core down, and look at the store while no core runs: the
	// state and the pending timer are both there, and agree.
	r.shutdown(t)
	stored := r.atRest(t)
	assert.GreaterOrEqual(t, stored.Count, before.Count, "the count is committed")
	t.Logf("at rest: %d ticks, pending tick %s", stored.Count, stored.Timer)

	// A new core on the same store: the tick fires (at once if it came due
	// while the core was down) and the chain goes on from the stored count.
	r.start(t)
	resumed := r.call(t, `{"kind":"status"}`, "")
	assert.GreaterOrEqual(t, resumed.Count, stored.Count, "the count goes on from the stored one")
	after := r.waitCount(t, stored.Count+3, "three more ticks after the restart")
	r.waitOnePending(t)
	t.Logf("after the restart: %d ticks", after.Count)

	// Stop: the pending tick is cancelled and no timer is left.
	stopped := r.call(t, `{"kind":"stop"}`, "stop-1")
	assert.Empty(t, stopped.Timer)
	assert.GreaterOrEqual(t, stopped.Count, after.Count)
	left, err := r.core.Timers(ctx, alice)
	require.NoError(t, err)
	assert.Empty(t, left, "stop leaves no pending timer")
	st, err := r.core.Store().Stats(alice)
	require.NoError(t, err)
	assert.Zero(t, st.DeadLetters, "dead letters")
}

// newRig runs the example's own config (examples/reminders/graft.yaml),
// copied into a fresh folder with the built plugin where it names it
// (bin/reminder), so the store (./data) is fresh too.
func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, "../../examples/reminders/graft.yaml", filepath.Join(dir, "graft.yaml"), 0o600)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "bin"), 0o700))
	copyFile(t, filepath.Join(plugins, "reminder"), filepath.Join(dir, "bin", "reminder"), 0o700)
	cfg, err := config.Load(filepath.Join(dir, "graft.yaml"))
	require.NoError(t, err)
	require.True(t, cfg.Behaviours["reminder"].Virtual, "the example's behaviour is virtual")
	require.Empty(t, cfg.Actors, "the example lists no actor")
	r := &rig{store: cfg.Store.Path, cfg: cfg.Core(testbin.Logger(t), nil)}
	r.cfg.SocketDir = testbin.ShortDir(t) // unix socket paths are short
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, mode))
}

// start runs a new core on the rig's store.
func (r *rig) start(t *testing.T) {
	t.Helper()
	c, err := core.New(r.cfg)
	require.NoError(t, err)
	r.core = c
	require.NoError(t, c.Start(ctxFor(t, waitLong)))
}

// shutdown stops the running core, if any, gracefully.
func (r *rig) shutdown(t *testing.T) {
	t.Helper()
	if r.core == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	c := r.core
	r.core = nil
	require.NoError(t, c.Shutdown(ctx), "shutdown")
}

// atRest opens the store while no core runs and returns alice's committed
// state, checking that its pending tick is the one chain the store holds:
// either still a pending timer, or, if it fired just before the shutdown,
// a message queued in alice's mailbox for the next core to handle (then
// no timer is pending: the next one is set when that tick is handled).
func (r *rig) atRest(t *testing.T) status {
	t.Helper()
	require.Nil(t, r.core, "the core must be down")
	s, err := pebblestore.Open(r.store, mailbox.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	ctx := ctxFor(t, waitShort)
	st, err := s.State(ctx, alice)
	require.NoError(t, err)
	var got status
	require.NoError(t, json.Unmarshal(st.Data, &got), "alice's state: %s", st.Data)
	require.NotEmpty(t, got.Timer, "a running reminder has a pending tick")
	pending, err := s.PendingTimers(ctx, alice)
	require.NoError(t, err)
	queued, err := s.Read(ctx, alice, 0, 100)
	require.NoError(t, err)
	var ticks []string // timer ids of the fired ticks still queued
	for _, m := range queued {
		if m.TimerID != "" {
			ticks = append(ticks, m.TimerID)
		}
	}
	switch len(pending) {
	case 1:
		assert.Equal(t, got.Timer, pending[0].ID, "the state names the pending tick")
		assert.Equal(t, alice, pending[0].To)
		assert.Empty(t, ticks, "a pending tick and a fired one: two chains")
	case 0:
		assert.Equal(t, []string{got.Timer}, ticks, "no timer pending: the tick the state names fired and waits in the mailbox")
	default:
		t.Fatalf("more than one pending tick at rest: %+v", pending)
	}
	return got
}

// call calls alice with payload and decodes the status it replies. A
// non-empty id makes a retry apply once; "" lets the core make one up.
func (r *rig) call(t *testing.T, payload, id string) status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	reply, err := r.core.Call(ctx, alice, []byte(payload), core.SendOptions{ID: id})
	require.NoError(t, err, "call %s %s", alice, payload)
	var s status
	require.NoError(t, json.Unmarshal(reply, &s), "reply %q", reply)
	return s
}

// waitCount polls alice's status until its count reaches n, and returns it.
func (r *rig) waitCount(t *testing.T, n int, what string) status {
	t.Helper()
	var s status
	poll(t, what, func() bool {
		s = r.call(t, `{"kind":"status"}`, "")
		return s.Count >= n
	})
	return s
}

// waitOnePending checks that alice has at most one pending timer whenever
// it looks (never two chains of ticks), and waits until a status and the
// list of timers, taken one after the other, agree on it (a tick between
// the two changes the id, so it looks again).
func (r *rig) waitOnePending(t *testing.T) {
	t.Helper()
	poll(t, "alice's status and timers to agree on one pending tick", func() bool {
		s := r.call(t, `{"kind":"status"}`, "")
		timers, err := r.core.Timers(context.Background(), alice)
		require.NoError(t, err)
		require.LessOrEqual(t, len(timers), 1, "one chain of ticks: %+v", timers)
		if len(timers) == 0 || timers[0].ID != s.Timer {
			return false
		}
		assert.Equal(t, alice, timers[0].Owner)
		assert.Equal(t, alice, timers[0].To)
		assert.JSONEq(t, `{"kind":"tick"}`, string(timers[0].Payload))
		return true
	})
}

// poll checks cond every 50 ms (each check is a durable call, so not every
// 5 ms as testbin.WaitFor does) until it holds or waitLong passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
