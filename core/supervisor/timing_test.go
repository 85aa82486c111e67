package supervisor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file run in a synctest bubble: the supervisor's timers
// (restart delays, start and stop timeouts) run on the bubble's fake clock,
// which moves only when every goroutine of the bubble is blocked. So they
// assert exact delays and windows, to the nanosecond, on a machine however
// loaded. A goroutine still blocked when the bubble ends fails the test, so
// they need no goroutine count either.

const ms = time.Millisecond

// stateOf is a child's state, or -1 if it is gone.
func stateOf(s *Supervisor, id string) ChildState {
	st, ok := status(s, id)
	if !ok {
		return -1
	}
	return st.State
}

// exited says whether the supervisor has exited.
func exited(s *Supervisor) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// crashAndRestart crashes instance i of child id, checks that it waits out
// exactly its restart delay (not a nanosecond less) and returns that delay.
func (h *harness) crashAndRestart(s *Supervisor, id string, i int) time.Duration {
	h.t.Helper()
	h.instance(id, i).crash(errCrash)
	synctest.Wait()
	st, _ := status(s, id)
	require.Equal(h.t, Backoff, st.State, "after crash %d", i)
	time.Sleep(st.Delay - time.Nanosecond)
	synctest.Wait()
	require.Equal(h.t, Backoff, stateOf(s, id), "restart %d came before its delay %s", i, st.Delay)
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	require.Equal(h.t, Running, stateOf(s, id), "restart %d did not come at its delay %s", i, st.Delay)
	require.Equal(h.t, i+2, h.instances(id))
	return st.Delay
}

func TestBackoffDoublesUpToItsCapExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		// Period is long, so the child never runs long enough to reset.
		s := h.newSup(Spec{MaxRestarts: 100, Period: time.Hour, BackoffMin: 20 * ms, BackoffMax: 100 * ms}, h.spec("a", opts{}))
		var delays []time.Duration
		for i := range 6 {
			delays = append(delays, h.crashAndRestart(s, "a", i))
		}
		require.Equal(t, []time.Duration{20 * ms, 40 * ms, 80 * ms, 100 * ms, 100 * ms, 100 * ms}, delays, "doubling, capped")

		// The events tell the same story: each start comes exactly its
		// delay after the restart was decided.
		var gaps []time.Duration
		var decided time.Time
		for _, ev := range h.eventsCopy() {
			switch {
			case ev.Kind == EventRestarting:
				require.Equal(t, delays[len(gaps)], ev.Delay)
				decided = ev.Time
			case ev.Kind == EventStarting && !decided.IsZero():
				gaps = append(gaps, ev.Time.Sub(decided))
				decided = time.Time{}
			}
		}
		assert.Equal(t, delays, gaps)
	})
}

func TestBackoffResetsAfterExactlyOnePeriodOfRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		const period = 2 * time.Second
		s := h.newSup(Spec{MaxRestarts: 100, Period: period, BackoffMin: 20 * ms, BackoffMax: 100 * ms}, h.spec("a", opts{}))
		require.Equal(t, 20*ms, h.crashAndRestart(s, "a", 0))
		require.Equal(t, 40*ms, h.crashAndRestart(s, "a", 1))
		time.Sleep(period - time.Nanosecond) // the child runs a nanosecond short of Period
		require.Equal(t, 80*ms, h.crashAndRestart(s, "a", 2), "a run shorter than Period keeps the backoff")
		time.Sleep(period) // now it runs exactly Period
		require.Equal(t, 20*ms, h.crashAndRestart(s, "a", 3), "a run of Period starts the backoff over")
		require.Equal(t, 40*ms, h.crashAndRestart(s, "a", 4))
	})
}

// TestIntensityWindowIsExact: with MaxRestarts 3 and Period 5 s, a fourth
// restart within 5 s of the first makes the supervisor give up; one exactly
// 5 s after the first does not, as the first has left the window, which
// then slides on.
func TestIntensityWindowIsExact(t *testing.T) {
	const period = 5 * time.Second
	sec := time.Second
	cases := []struct {
		name   string
		at     []time.Duration // when each crash comes, from the first
		gaveUp bool
	}{
		{"three restarts are allowed", []time.Duration{0, sec, 2 * sec}, false},
		{"a fourth a nanosecond inside the period escalates", []time.Duration{0, sec, 2 * sec, period - time.Nanosecond}, true},
		{"a fourth exactly one period after the first does not", []time.Duration{0, sec, 2 * sec, period}, false},
		{"the window slides: a fifth inside the second's period escalates", []time.Duration{0, sec, 2 * sec, period, period + sec - time.Nanosecond}, true},
		{"the window slides: a fifth a period after the second does not", []time.Duration{0, sec, 2 * sec, period, period + sec}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				s := h.newSup(Spec{MaxRestarts: 3, Period: period, BackoffMin: ms, BackoffMax: ms}, h.spec("a", opts{}))
				t0 := time.Now()
				for i, at := range tc.at {
					time.Sleep(time.Until(t0.Add(at)))
					synctest.Wait()
					require.Equal(t, Running, stateOf(s, "a"), "before crash %d", i)
					h.instance("a", i).crash(errCrash)
				}
				time.Sleep(ms) // the last restart's delay, if there is one
				synctest.Wait()
				if !tc.gaveUp {
					require.False(t, exited(s), "gave up: %v", s.Err())
					st, _ := status(s, "a")
					assert.Equal(t, Running, st.State)
					assert.Equal(t, len(tc.at), st.Restarts)
					return
				}
				require.True(t, exited(s), "did not give up: %v", h.logCopy())
				require.ErrorIs(t, s.Err(), ErrIntensity)
				assert.ErrorContains(t, s.Err(), "more than 3 restarts within 5s")
				assert.Equal(t, Failed, stateOf(s, "a"))
				assert.True(t, h.hasEvent(EventGaveUp, "a", ErrIntensity))
				assert.Equal(t, len(tc.at), h.instances("a"), "no restart after the give-up")
			})
		})
	}
}

// TestGroupRestartCountsOnceTowardsIntensity: a one_for_all restart of
// three children is one restart, as in OTP.
func TestGroupRestartCountsOnceTowardsIntensity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		s := h.newSup(Spec{Strategy: OneForAll, MaxRestarts: 1, Period: time.Hour, BackoffMin: ms, BackoffMax: ms},
			h.spec("a", opts{}), h.spec("b", opts{}), h.spec("c", opts{}))
		h.instance("b", 0).crash(errCrash)
		time.Sleep(ms)
		synctest.Wait()
		require.False(t, exited(s), "one group restart is within MaxRestarts 1: %v", s.Err())
		for _, id := range []string{"a", "b", "c"} {
			assert.Equal(t, Running, stateOf(s, id), id)
			assert.Equal(t, 2, h.instances(id), id)
		}
		h.instance("a", 1).crash(errCrash)
		synctest.Wait()
		require.True(t, exited(s), "a second restart exceeds MaxRestarts 1")
		require.ErrorIs(t, s.Err(), ErrIntensity)
	})
}

func TestNegativeMaxRestartsAllowsNoRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		s := h.newSup(Spec{MaxRestarts: -1}, h.spec("a", opts{}))
		h.instance("a", 0).crash(errCrash)
		synctest.Wait()
		require.True(t, exited(s))
		require.ErrorIs(t, s.Err(), ErrIntensity)
		assert.Equal(t, 1, h.instances("a"))
	})
}

// TestStartTimeoutFiresExactlyAndTheLateChildIsStopped: a start that
// ignores its ctx and one that honours it both fail exactly at
// StartTimeout with ErrStartTimeout; the first one's Child, returned long
// after, is stopped and does not replace the running one.
func TestStartTimeoutFiresExactlyAndTheLateChildIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		const timeout, delay = 100 * ms, 10 * ms
		hang := h.spec("hang", opts{pre: func(ctx context.Context, attempt int) error {
			switch attempt {
			case 0:
				<-release // ignores its ctx
			case 1:
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}})
		hang.StartTimeout = timeout
		s := h.build(Spec{MaxRestarts: 100, Period: time.Hour, BackoffMin: delay, BackoffMax: delay}, hang)
		t0 := time.Now()
		started := make(chan error, 1)
		go func() { started <- s.Start(context.Background()) }()
		for attempt, failAt := range []time.Duration{timeout, delay + 2*timeout} {
			time.Sleep(time.Until(t0.Add(failAt - time.Nanosecond)))
			synctest.Wait()
			require.Equal(t, Starting, stateOf(s, "hang"), "attempt %d failed before its StartTimeout", attempt)
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			require.Equal(t, Backoff, stateOf(s, "hang"), "attempt %d did not fail at its StartTimeout", attempt)
		}
		time.Sleep(delay)
		require.NoError(t, <-started)
		require.Equal(t, Running, stateOf(s, "hang"))
		var failed []Event
		for _, ev := range h.eventsCopy() {
			if ev.Kind == EventStartFailed {
				failed = append(failed, ev)
			}
		}
		require.Len(t, failed, 2)
		for i, ev := range failed {
			assert.ErrorIs(t, ev.Err, ErrStartTimeout, "attempt %d", i)
			assert.ErrorContains(t, ev.Err, "no result within 100ms", "attempt %d", i)
		}

		late := h.instances("hang") // the instance number attempt 0 will create
		close(release)
		synctest.Wait()
		assert.Equal(t, late+1, h.instances("hang"))
		assert.Equal(t, 1, h.count(fmt.Sprintf("stopped hang#%d", late)), "the late Child is stopped: %v", h.logCopy())
		assert.Equal(t, Running, stateOf(s, "hang"), "the late Child does not replace the running one")
		h.stop(s)
		assert.True(t, h.allInstancesDone())
	})
}

func TestStopTimeoutIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		never := make(chan struct{})
		defer close(never)
		stubborn := h.spec("stubborn", opts{ignoreStop: never})
		stubborn.StopTimeout = 50 * ms
		s := h.newSup(Spec{}, stubborn)
		began := time.Now()
		require.NoError(t, s.Stop(context.Background()))
		assert.Equal(t, 50*ms, time.Since(began), "Stop waits exactly the child's StopTimeout")
		assert.True(t, h.hasEvent(EventStopped, "stubborn", ErrStopTimeout))
	})
}

// TestStopReturnsAtItsDeadlineWhenAChildIgnoresStop: Stop's ctx deadline
// cuts every child's StopTimeout; the children after a stubborn one are
// still asked to stop.
func TestStopReturnsAtItsDeadlineWhenAChildIgnoresStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		never := make(chan struct{})
		release := sync.OnceFunc(func() { close(never) })
		defer release()
		stubborn := h.spec("stubborn", opts{ignoreStop: never})
		stubborn.StopTimeout = time.Hour
		s := h.newSup(Spec{}, h.spec("a", opts{}), stubborn)

		ctx, cancel := context.WithTimeout(context.Background(), 200*ms)
		defer cancel()
		began := time.Now()
		err := s.Stop(ctx)
		assert.Equal(t, 200*ms, time.Since(began), "Stop returns at its deadline, not at the StopTimeout: %v", err)
		synctest.Wait()
		require.True(t, exited(s), "the shutdown ended at the deadline too")
		assert.Equal(t, 1, h.count("stopped a#0"), "the well-behaved child was stopped: %v", h.logCopy())
		assert.True(t, h.hasEvent(EventStopped, "stubborn", ErrStopTimeout))
		release()
		h.awaitAllDone()
	})
}

// TestMethodsAnswerWithoutWaitingWhileAStartHangs: Children, Add and
// Terminate answer while a start hangs without any time passing at all:
// none waits for the start, a timer or its own ctx.
func TestMethodsAnswerWithoutWaitingWhileAStartHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		entered := make(chan struct{})
		hang := h.spec("hang", opts{pre: func(ctx context.Context, _ int) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		}})
		hang.StartTimeout = time.Hour
		s := h.build(Spec{}, hang)
		short, cancelShort := context.WithCancel(context.Background())
		go func() { <-entered; cancelShort() }()
		require.ErrorIs(t, s.Start(short), context.Canceled, "Start's wait is bounded by its ctx")

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		began := time.Now()
		children := s.Children()
		require.Len(t, children, 1)
		assert.Equal(t, Starting, children[0].State)
		require.NoError(t, s.Add(ctx, h.spec("other", opts{})))
		require.NoError(t, s.Terminate(ctx, "hang"))
		assert.Zero(t, time.Since(began), "a method waited for a timer")
		assert.Equal(t, Stopped, stateOf(s, "hang"))
		assert.Equal(t, Running, stateOf(s, "other"))
		h.stop(s)
	})
}

// TestStopAbandonsAStartThatIgnoresItsCtxAndItsChildIsStoppedLater: Stop
// waits for a start that ignores its cancellation for exactly the grace of
// its StopTimeout; the Child that start returns after the supervisor is
// gone is stopped by the start's own cleanup.
func TestStopAbandonsAStartThatIgnoresItsCtxAndItsChildIsStoppedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		entered := make(chan struct{})
		deaf := h.spec("deaf", opts{pre: func(context.Context, int) error {
			close(entered)
			<-release // ignores ctx: a broken Start
			return nil
		}})
		deaf.StopTimeout = 100 * ms
		s := h.build(Spec{}, deaf)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-entered; cancel() }()
		require.Error(t, s.Start(ctx))

		began := time.Now()
		require.NoError(t, s.Stop(context.Background()))
		assert.Equal(t, 100*ms, time.Since(began), "Stop waits for a deaf start exactly its StopTimeout")
		close(release)
		synctest.Wait()
		assert.Equal(t, 1, h.count("stopped deaf#0"), "the orphan child is stopped: %v", h.logCopy())
		assert.True(t, h.allInstancesDone())
	})
}

// TestStartAndStopErrorsNameTheTimeout: what the timeouts say, for
// operators reading a log.
func TestStartAndStopErrorsNameTheTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		never := make(chan struct{})
		defer close(never)
		hang := h.spec("hang", opts{pre: func(ctx context.Context, _ int) error { <-ctx.Done(); return ctx.Err() }})
		hang.StartTimeout = 3 * time.Second
		hang.Restart = Temporary
		stubborn := h.spec("stubborn", opts{ignoreStop: never})
		stubborn.StopTimeout = 2 * time.Second
		s := h.newSup(Spec{}, stubborn)
		err := s.Add(context.Background(), hang)
		require.ErrorIs(t, err, ErrStartTimeout)
		assert.ErrorContains(t, err, `start child "hang": no result within 3s`)
		require.NoError(t, s.Stop(context.Background()))
		var stopErr error
		for _, ev := range h.eventsCopy() {
			if ev.Kind == EventStopped && ev.Child == "stubborn" {
				stopErr = ev.Err
			}
		}
		require.ErrorIs(t, stopErr, ErrStopTimeout)
		assert.ErrorContains(t, stopErr, `stop child "stubborn": Stop did not return within 2s`)
	})
}
