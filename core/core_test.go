package core_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
)

func TestSendAndCallExactlyOnce(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	_, err := c.Send(ctx, "a", []byte("first"), core.SendOptions{})
	require.NoError(t, err)
	reply, err := c.Call(ctx, "a", []byte("hello"), core.SendOptions{ID: "c1"})
	require.NoError(t, err)
	assert.Equal(t, "ok:hello", string(reply))
	again, err := c.Call(ctx, "a", []byte("hello"), core.SendOptions{ID: "c1"})
	require.NoError(t, err)
	assert.Equal(t, "ok:hello", string(again), "a retried call gets the stored reply")
	assert.Equal(t, []string{"first", "hello"}, applied(t, c, "a"), "and the message is applied once")

	_, err = c.Send(ctx, "nobody", []byte("x"), core.SendOptions{})
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
}

// A caller that gives up leaves its message queued, applied once later, and
// its reply retrievable with the same id.
func TestCallerThatGivesUpLeaksNothing(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	waitFor(t, 10*time.Second, "actor a running", func() bool { return status(t, c, "a").Status == "running" })
	require.NoError(t, c.StopActor(ctx, "a"))
	before := runtime.NumGoroutine()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := c.Call(short, "a", []byte("later"), core.SendOptions{ID: "gave-up"})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "retry with the same id")
	waitFor(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before })

	require.NoError(t, c.StartActor(ctx, "a"))
	reply, err := c.Call(ctx, "a", []byte("later"), core.SendOptions{ID: "gave-up"})
	require.NoError(t, err)
	assert.Equal(t, "ok:later", string(reply))
	assert.Equal(t, []string{"later"}, applied(t, c, "a"))
}

// A message that crashes its module every time is dead-lettered after
// MaxAttempts while the messages around it are applied in order.
func TestPoisonMessageIsDeadLettered(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 60*time.Second)
	want := []string{}
	for i, p := range []string{"m1", "m2", "crash", "m3", "error", "m4", "m5"} {
		_, err := c.Send(ctx, "a", []byte(p), core.SendOptions{ID: "id-" + strconv.Itoa(i)})
		require.NoError(t, err)
		if p != "crash" && p != "error" {
			want = append(want, p)
		}
	}
	waitFor(t, 45*time.Second, "mailbox drained", func() bool { return drained(c, "a") })
	assert.Equal(t, want, applied(t, c, "a"))
	dls, err := c.Store().DeadLetters(ctx, "a")
	require.NoError(t, err)
	require.Len(t, dls, 2)
	assert.Equal(t, "crash", string(dls[0].Message.Payload))
	assert.EqualValues(t, 3, dls[0].Message.Attempts)
	assert.Contains(t, dls[0].Message.LastError, "exit status 3", "the last error says how the module died")
	assert.Equal(t, "error", string(dls[1].Message.Payload))
	assert.Contains(t, dls[1].Message.LastError, "refused on request")
	_, err = c.Call(ctx, "a", []byte("crash"), core.SendOptions{ID: "id-2"})
	assert.ErrorContains(t, err, "dead-lettered", "a retried call learns its message was dead-lettered")
}

// A synchronous call that would close a cycle fails at once, naming it.
func TestCallCycleFailsFast(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	cfg.MaxAttempts = 1
	c := startCore(t, cfg)
	ctx := ctxFor(t, 20*time.Second) // well under the 5 s handle timeout × attempts a deadlock would take
	_, err := c.Call(ctx, "a", []byte("call:b:call:a:x"), core.SendOptions{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "call cycle: a -> b -> a")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}

// A handler that called another actor and then crashed is redelivered; it
// asks again with the same id and gets the stored answer: the callee
// applies the call once.
func TestRedeliveredCallIsNotAppliedTwice(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a", "b"))
	ctx := ctxFor(t, 30*time.Second)
	reply, err := c.Call(ctx, "a", []byte("callcrash:b"), core.SendOptions{ID: "cc"})
	require.NoError(t, err)
	assert.Equal(t, "ok:from-callcrash", string(reply))
	assert.Equal(t, []string{"from-callcrash"}, applied(t, c, "b"), "the callee applied the call once")
	assert.Equal(t, []string{"callcrash:b=ok:from-callcrash"}, applied(t, c, "a"))
	assert.Contains(t, status(t, c, "a").LastExit, "exit status 4", "the module did crash")
}

// kill -9 and SIGSTOP of the module under load: every send is applied
// exactly once, in order.
func TestModuleKillAndStopUnderLoad(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	b := cfg.Behaviours["recorder"]
	b.HandleTimeout = time.Second
	cfg.Behaviours["recorder"] = b
	cfg.MaxAttempts = 100 // innocent messages in flight during a kill must never be dead-lettered here
	c := startCore(t, cfg)
	ctx := ctxFor(t, 90*time.Second)
	const n = 300
	var wg sync.WaitGroup
	for _, actor := range []string{"a", "b"} {
		wg.Add(1)
		go func(actor string) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				_, err := c.Send(ctx, actor, []byte(fmt.Sprintf("%s-%d", actor, i)), core.SendOptions{ID: fmt.Sprint(i)})
				assert.NoError(t, err)
			}
		}(actor)
	}
	pid := func() int { return status(t, c, "a").Pid }
	waitFor(t, 20*time.Second, "some messages applied", func() bool { return len(applied(t, c, "a")) > 20 })
	first := pid()
	require.NotZero(t, first)
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	waitFor(t, 20*time.Second, "a new module generation", func() bool { p := pid(); return p != 0 && p != first })
	second := pid()
	waitFor(t, 20*time.Second, "progress after the kill", func() bool { return len(applied(t, c, "a")) > 60 })
	require.NoError(t, syscall.Kill(second, syscall.SIGSTOP))
	waitFor(t, 20*time.Second, "the stopped module replaced", func() bool { p := pid(); return p != 0 && p != second })
	wg.Wait()
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return drained(c, "a", "b") })
	for _, actor := range []string{"a", "b"} {
		got := applied(t, c, actor)
		require.Len(t, got, n, "actor %s", actor)
		for i, p := range got {
			require.Equal(t, fmt.Sprintf("%s-%d", actor, i), p, "actor %s: applied out of order or twice", actor)
		}
	}
	assert.False(t, testbin.Alive(second), "the SIGSTOPped module was killed")
}

// A plugin whose start hangs is bounded by the start timeout, Start and
// the status answer meanwhile, and nothing is left behind.
func TestHangingStartIsBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := recorderConfig(t, dir, "ok")
	cfg.Behaviours["stuck"] = core.BehaviourConfig{Binary: bin("hangstart"), StartTimeout: 300 * time.Millisecond, StopTimeout: time.Second}
	// hung's start hangs for longer than the test: whatever answers while
	// it is starting did not wait for it.
	cfg.Behaviours["hung"] = core.BehaviourConfig{Binary: bin("hangstart"), StartTimeout: time.Hour, StopTimeout: time.Second}
	cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: "stuck", Behaviour: "stuck"}, core.ActorConfig{Name: "hung", Behaviour: "hung"})
	cfg.Supervision.MaxRestarts = 1000 // keep retrying: the test looks at one failed start
	before := len(testbin.Children())
	c, err := core.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })
	testbin.Returns(t, 30*time.Second, "Start with a 100 ms context while a start hangs for an hour", func() {
		err = c.Start(ctxFor(t, 100*time.Millisecond))
	})
	require.NoError(t, err, "Start does not wait past its context for a hanging start")
	st, err := c.Status(ctxFor(t, 10*time.Second))
	require.NoError(t, err, "status answers while a start hangs")
	hung := ""
	for _, a := range st {
		if a.Name == "hung" {
			hung = a.Status
		}
	}
	assert.Equal(t, "starting", hung, "the status came while hung was starting")
	waitFor(t, 20*time.Second, "the hanging start to fail", func() bool {
		st := status(t, c, "stuck")
		return st.Restarts >= 1 && st.LastError != ""
	})
	assert.Contains(t, status(t, c, "stuck").LastError, "no handshake within the start timeout")
	reply, err := c.Call(ctxFor(t, 20*time.Second), "ok", []byte("still served"), core.SendOptions{})
	require.NoError(t, err, "the other behaviour is not harmed")
	assert.Equal(t, "ok:still served", string(reply))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Shutdown(ctx))
	waitFor(t, 5*time.Second, "no plugin process left", func() bool { return len(testbin.Children()) <= before })
}

// 100 stop/start cycles of an actor with a process of its own leak no
// process, goroutine or file descriptor.
func TestStopStartCyclesLeakNothing(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "own")
	cfg.Actors[0].OwnProcess = true
	c := startCore(t, cfg)
	ctx := ctxFor(t, 5*time.Minute)
	_, err := c.Call(ctx, "own", []byte("warm-up"), core.SendOptions{})
	require.NoError(t, err)
	procs, goroutines, fds := len(testbin.Children()), runtime.NumGoroutine(), testbin.CountFDs()
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	pids := map[int]bool{}
	for i := 0; i < cycles; i++ {
		require.NoError(t, c.StopActor(ctx, "own"))
		require.NoError(t, c.StartActor(ctx, "own"))
		reply, err := c.Call(ctx, "own", []byte("pid"), core.SendOptions{})
		require.NoError(t, err)
		pid, _ := strconv.Atoi(string(reply))
		pids[pid] = true
	}
	assert.Len(t, pids, cycles, "every start ran a fresh process")
	waitFor(t, 10*time.Second, "processes, goroutines and fds to settle", func() bool {
		return len(testbin.Children()) <= procs && runtime.NumGoroutine() <= goroutines+2 && testbin.CountFDs() <= fds
	})
}

// The upgrade hooks: Pause holds an actor between commits; Swap moves it
// onto another module with a new state, and a failing swap leaves it as it
// was; a hook's commit cannot ack messages.
func TestSwapPoint(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	_, err := c.Call(ctx, "a", []byte("before"), core.SendOptions{})
	require.NoError(t, err)

	up := c.Upgrades()
	p, err := up.Pause(ctx, "a")
	require.NoError(t, err)
	_, err = c.Send(ctx, "a", []byte("while-paused"), core.SendOptions{})
	require.NoError(t, err)
	st, err := c.Store().Stats("a")
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.Depth, "a paused actor takes no batch; messages keep arriving")
	_, err = up.Pause(ctx, "a")
	assert.ErrorContains(t, err, "already paused")
	err = up.CommitStates(ctx, mailbox.Commit{Actor: "a", Epoch: p.Epoch, Through: 1})
	assert.ErrorContains(t, err, "an upgrade commits states only", "an upgrade hook cannot ack messages")
	p.Resume(nil, nil)
	waitFor(t, 10*time.Second, "resumed actor to catch up", func() bool { return drained(c, "a") })

	next, err := up.LoadModule(ctx, "recorder", bin("recorder"), "")
	require.NoError(t, err)
	defer next.Close(ctx)
	failed := errors.New("migration refused")
	_, err = up.Swap(ctx, "a", next, func(context.Context, mailbox.State, *dynamic.Instance) (mailbox.State, error) {
		return mailbox.State{}, failed
	})
	require.ErrorIs(t, err, failed)
	assert.Equal(t, []string{"before", "while-paused"}, applied(t, c, "a"), "a failed swap leaves the state untouched")

	pause, err := up.Swap(ctx, "a", next, func(_ context.Context, st mailbox.State, m *dynamic.Instance) (mailbox.State, error) {
		st.Data = []byte(`{"applied":["migrated"]}`)
		st.Module = "swapped"
		return st, nil
	})
	require.NoError(t, err)
	assert.Positive(t, pause)
	reply, err := c.Call(ctx, "a", []byte("after"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:after", string(reply))
	assert.Equal(t, []string{"migrated", "after"}, applied(t, c, "a"))
}

func status(t testing.TB, c *core.Core, actor string) core.ActorStatus {
	t.Helper()
	list, err := c.Status(context.Background())
	require.NoError(t, err)
	for _, s := range list {
		if s.Name == actor {
			return s
		}
	}
	t.Fatalf("no status for actor %q", actor)
	return core.ActorStatus{}
}

// A poison message crashing a shared module must not take innocent
// messages of other actors with it: a message whose batch died beside
// others is retried alone in a quarantine process before any failure is
// counted against it. MaxAttempts 1 makes a single wrong count visible.
func TestPoisonDoesNotDeadLetterOtherActors(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "poisoned", "i1", "i2", "i3")
	cfg.MaxAttempts = 1
	c := startCore(t, cfg)
	ctx := ctxFor(t, 90*time.Second)
	const n = 150
	var wg sync.WaitGroup
	for _, a := range []string{"i1", "i2", "i3"} {
		wg.Add(1)
		go func(a string) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				_, err := c.Send(ctx, a, []byte(fmt.Sprintf("%s-%d", a, i)), core.SendOptions{})
				assert.NoError(t, err)
			}
		}(a)
	}
	for i := 0; i < 3; i++ {
		_, err := c.Send(ctx, "poisoned", []byte("crash"), core.SendOptions{})
		require.NoError(t, err)
	}
	wg.Wait()
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return drained(c, "poisoned", "i1", "i2", "i3") })
	for _, a := range []string{"i1", "i2", "i3"} {
		dls, err := c.Store().DeadLetters(ctx, a)
		require.NoError(t, err)
		require.Empty(t, dls, "innocent actor %s lost messages to another actor's poison", a)
		assert.Len(t, applied(t, c, a), n)
	}
	dls, err := c.Store().DeadLetters(ctx, "poisoned")
	require.NoError(t, err)
	assert.Len(t, dls, 3, "the poison messages are dead-lettered")
}

// Destroying an actor in the middle of a batch abandons the batch at once
// and ends the actor exactly once, however its crash path and the forced
// stop race; the actor and its queued batch are then gone for good.
func TestDestroyBusyActor(t *testing.T) {
	for i := 0; i < 5; i++ {
		cfg := recorderConfig(t, t.TempDir(), "busy")
		cfg.Actors[0].OwnProcess = true // closing its own module widens the race
		c := startCore(t, cfg)
		ctx := ctxFor(t, 30*time.Second)
		_, err := c.Send(ctx, "busy", []byte("hang"), core.SendOptions{})
		require.NoError(t, err)
		waitFor(t, 10*time.Second, "the batch in flight", func() bool { return status(t, c, "busy").InFlight > 0 })
		require.NoError(t, c.DestroyActor(ctx, "busy"))
		_, err = c.Store().Stats("busy")
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor, "destroyed with its mailbox")
	}
}
