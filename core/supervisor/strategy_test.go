package supervisor

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fast is a spec whose restarts are quick and whose intensity is not in the
// way of a test.
func fast(st Strategy) Spec {
	return Spec{Strategy: st, MaxRestarts: 100, Period: time.Minute, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond}
}

func TestNewRefusesBadTrees(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name     string
		children []ChildSpec
		is       error
		contains string
	}{
		{"duplicate", []ChildSpec{h.spec("a", opts{}), h.spec("a", opts{})}, ErrDuplicateChild, `"a"`},
		{"unknown requirement", []ChildSpec{h.spec("a", opts{}, "zz")}, ErrUnknownChild, `"zz"`},
		{"two-cycle", []ChildSpec{h.spec("a", opts{}, "b"), h.spec("b", opts{}, "a")}, ErrCycle, "a -> b -> a"},
		{"self-cycle", []ChildSpec{h.spec("a", opts{}, "a")}, ErrCycle, "a -> a"},
		{"long cycle behind a root", []ChildSpec{
			h.spec("root", opts{}), h.spec("x", opts{}, "root", "y"), h.spec("y", opts{}, "z"), h.spec("z", opts{}, "x"),
		}, ErrCycle, "x -> y -> z -> x"},
		{"requires temporary", []ChildSpec{
			func() ChildSpec { c := h.spec("t", opts{}); c.Restart = Temporary; return c }(),
			h.spec("a", opts{}, "t"),
		}, ErrInvalidSpec, `"t"`},
		{"nil start", []ChildSpec{{ID: "a"}}, ErrInvalidSpec, `"a"`},
		{"empty id", []ChildSpec{{Start: h.spec("a", opts{}).Start}}, ErrInvalidSpec, "empty id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Spec{}, tc.children...)
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
	_, err := New(Spec{Strategy: 7})
	require.ErrorIs(t, err, ErrInvalidSpec)
	_, err = New(Spec{BackoffMin: time.Second, BackoffMax: time.Millisecond})
	require.ErrorIs(t, err, ErrInvalidSpec)
	assert.Empty(t, h.logCopy(), "nothing may start when validation fails")
}

func TestOneForOneRestartsOnlyTheFailedChild(t *testing.T) {
	h := newHarness(t)
	s := h.newSup(fast(OneForOne), h.spec("a", opts{}), h.spec("b", opts{}), h.spec("c", opts{}))
	h.instance("b", 0).crash(errCrash)
	h.awaitState(s, "b", Running, 2)

	assert.Equal(t, 1, h.instances("a"))
	assert.Equal(t, 1, h.instances("c"))
	assert.Zero(t, h.count("stop a#0")+h.count("stop c#0"), "siblings must not be stopped: %v", h.logCopy())
	st, _ := status(s, "b")
	assert.Equal(t, 1, st.Restarts)
	assert.ErrorIs(t, st.LastError, errCrash)
	assert.True(t, h.hasEvent(EventExited, "b", errCrash))
}

func TestOneForAllStopsInReverseAndRestartsInOrder(t *testing.T) {
	h := newHarness(t)
	// The requirement chain makes start order observable despite
	// concurrent starts: a, then b, then c.
	s := h.newSup(fast(OneForAll), h.spec("a", opts{}), h.spec("b", opts{}, "a"), h.spec("c", opts{}, "b"))
	h.instance("b", 0).crash(errCrash)
	for _, id := range []string{"a", "b", "c"} {
		h.awaitState(s, id, Running, 2)
	}
	exitB := h.index("exit b#0", 0)
	stopC, stopA := h.index("stop c#0", 0), h.index("stop a#0", 0)
	startA, startB, startC := h.index("start a", 1), h.index("start b", 1), h.index("start c", 1)
	log := h.logCopy()
	require.True(t, exitB >= 0 && stopC > exitB && stopA > stopC, "stops in reverse start order after the exit: %v", log)
	assert.True(t, startA > stopA && startB > startA && startC > startB, "restarts in start order after all stops: %v", log)
	st, _ := status(s, "b")
	assert.Equal(t, 1, st.Restarts, "the failed child counts the restart")
}

func TestRestForOneRestartsTheFailedChildAndLaterOnes(t *testing.T) {
	h := newHarness(t)
	s := h.newSup(fast(RestForOne), h.spec("a", opts{}), h.spec("b", opts{}), h.spec("c", opts{}), h.spec("d", opts{}))
	h.instance("b", 0).crash(errCrash)
	for _, id := range []string{"b", "c", "d"} {
		h.awaitState(s, id, Running, 2)
	}
	assert.Equal(t, 1, h.instances("a"), "a comes before b and is left alone")
	assert.Zero(t, h.count("stop a#0"))
	stopD, stopC := h.index("stop d#0", 0), h.index("stop c#0", 0)
	assert.True(t, stopD >= 0 && stopC > stopD, "later children stopped in reverse order: %v", h.logCopy())
	assert.Greater(t, h.index("start b", 1), stopC, "restart only after the stops")
}

func TestRestartTypes(t *testing.T) {
	h := newHarness(t)
	transient := h.spec("transient", opts{})
	transient.Restart = Transient
	transientErr := h.spec("transient-err", opts{})
	transientErr.Restart = Transient
	temporary := h.spec("temporary", opts{})
	temporary.Restart = Temporary
	s := h.newSup(fast(OneForOne), h.spec("permanent", opts{}), transient, transientErr, temporary)

	h.instance("permanent", 0).crash(nil)
	h.awaitState(s, "permanent", Running, 2)

	h.instance("transient", 0).crash(nil)
	h.awaitState(s, "transient", Stopped, 1)
	h.awaitEvent(EventExited, "transient", nil)

	h.instance("transient-err", 0).crash(errCrash)
	h.awaitState(s, "transient-err", Running, 2)

	h.instance("temporary", 0).crash(errCrash)
	h.await("temporary removed", func() bool { _, ok := status(s, "temporary"); return !ok })
	h.awaitEvent(EventRemoved, "temporary", nil)

	// Nothing else moved: transient stays stopped, temporary gone.
	assert.Equal(t, 1, h.instances("transient"))
	assert.Equal(t, 1, h.instances("temporary"))
	st, _ := status(s, "transient")
	assert.Equal(t, Stopped, st.State)
}

func TestStartFailuresFollowTheRestartRules(t *testing.T) {
	h := newHarness(t)
	failTwice := func(_ context.Context, attempt int) error {
		if attempt < 2 {
			return errors.New("not yet")
		}
		return nil
	}
	temp := h.spec("temp", opts{pre: func(context.Context, int) error { return errors.New("never") }})
	temp.Restart = Temporary
	panics := h.spec("panics", opts{pre: func(_ context.Context, attempt int) error {
		if attempt == 0 {
			panic("boom")
		}
		return nil
	}})
	s := h.newSup(fast(OneForOne), h.spec("flaky", opts{pre: failTwice}), temp, panics)
	h.awaitState(s, "flaky", Running, 1)
	st, _ := status(s, "flaky")
	assert.Equal(t, 2, st.Restarts, "each failed start is a restart")
	_, ok := status(s, "temp")
	assert.False(t, ok, "a temporary child whose start fails is removed")
	assert.True(t, h.hasEvent(EventStartFailed, "panics", ErrStartPanic))
	h.awaitState(s, "panics", Running, 1)
}

func TestIntensityExceededStopsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		spec := Spec{MaxRestarts: 2, Period: time.Minute, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond}
		s := h.build(spec, h.spec("a", opts{}), h.spec("b", opts{}), h.spec("c", opts{}))
		require.NoError(t, s.Start(context.Background()))
		for i := range 3 {
			h.awaitState(s, "b", Running, i+1)
			h.instance("b", i).crash(errCrash)
		}
		h.awaitDone(s)
		err := s.Err()
		require.ErrorIs(t, err, ErrIntensity)
		require.ErrorIs(t, err, errCrash, "the last child error is wrapped")
		assert.Contains(t, err.Error(), `"b"`)
		assert.True(t, h.allInstancesDone(), "every child is stopped: %v", h.logCopy())
		stopC, stopA := h.index("stop c#0", 0), h.index("stop a#0", 0)
		assert.True(t, stopC >= 0 && stopA > stopC, "reverse start order: %v", h.logCopy())
		st, _ := status(s, "b")
		assert.Equal(t, Failed, st.State)
		assert.True(t, h.hasEvent(EventGaveUp, "b", ErrIntensity))
		// Methods answer after exit.
		assert.ErrorIs(t, s.Terminate(context.Background(), "a"), ErrStopped)
		require.NoError(t, s.Stop(context.Background()))
	})
}

func TestStartReturnsErrIntensityWhenAChildNeverStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		bad := h.spec("bad", opts{pre: func(context.Context, int) error { return errors.New("broken binary") }})
		s := h.build(Spec{MaxRestarts: 1, BackoffMin: time.Millisecond}, bad)
		err := s.Start(context.Background())
		require.ErrorIs(t, err, ErrIntensity)
		assert.Contains(t, err.Error(), "broken binary")
	})
}

func TestNestedSupervisorFailsUpward(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var subs []*Supervisor
		sub := ChildSpec{ID: "sub", StopTimeout: 10 * time.Second, Start: func(ctx context.Context) (Child, error) {
			s, err := New(Spec{MaxRestarts: 1, BackoffMin: time.Millisecond}, h.spec("x", opts{}), h.spec("y", opts{}))
			if err != nil {
				return nil, err
			}
			h.mu.Lock()
			subs = append(subs, s)
			h.mu.Unlock()
			return s, s.Start(ctx)
		}}
		parent := h.newSup(fast(OneForOne), sub)
		// Two crashes in a row exceed the sub-supervisor's intensity (1).
		h.awaitState(parent, "sub", Running, 0)
		h.instance("x", 0).crash(errCrash)
		h.await("x restarted", func() bool { return h.count("up x#1") == 1 })
		h.instance("x", 1).crash(errCrash)

		h.await("parent restarts sub", func() bool {
			st, _ := status(parent, "sub")
			return st.State == Running && st.Restarts == 1
		})
		assert.True(t, h.hasEvent(EventExited, "sub", ErrIntensity), "parent saw the sub fail with ErrIntensity")
		h.mu.Lock()
		first := subs[0]
		h.mu.Unlock()
		require.ErrorIs(t, first.Err(), ErrIntensity)
		assert.Contains(t, h.logCopy(), "stopped y#0", "the failed sub stopped its other children")
		h.await("fresh x and y", func() bool { return h.count("up x#2") == 1 && h.count("up y#1") == 1 })
	})
}

func TestOverlappingRestartsTakeOverAStopInFlight(t *testing.T) {
	h := newHarness(t)
	slow := make(chan struct{})
	c := h.spec("c", opts{ignoreStop: slow}) // c#0's Stop blocks until released
	s := h.newSup(fast(RestForOne), h.spec("a", opts{}), h.spec("b", opts{}), c)

	h.instance("b", 0).crash(errCrash)
	h.await("c is being stopped", func() bool { return h.count("stop c#0") == 1 })
	// While c's stop is in flight, a crashes: its restart covers b and c too.
	h.instance("a", 0).crash(errCrash)
	h.awaitEvent(EventRestarting, "a", errCrash)
	close(slow)
	for _, id := range []string{"a", "b", "c"} {
		h.awaitState(s, id, Running, 2)
	}
	assert.Equal(t, 1, h.count("stop c#0"), "c is stopped once, the second restart waits for that stop")
	assert.Equal(t, 2, h.instances("a"))
	assert.Equal(t, 2, h.instances("b"))
	assert.Equal(t, 2, h.instances("c"))
	assert.Greater(t, h.index("start c", 1), h.index("stopped c#0", 0), "c restarts only after its old instance stopped")
}

func TestPermanentChildExitingNormallyStillCountsTowardsIntensity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		s := h.build(Spec{MaxRestarts: 1, BackoffMin: time.Millisecond}, h.spec("a", opts{}))
		require.NoError(t, s.Start(context.Background()))
		h.instance("a", 0).crash(nil)
		h.awaitState(s, "a", Running, 2)
		h.instance("a", 1).crash(nil)
		h.awaitDone(s)
		require.ErrorIs(t, s.Err(), ErrIntensity)
		assert.Contains(t, s.Err().Error(), "last exit was normal")
	})
}

func TestNamesForLogs(t *testing.T) {
	assert.Equal(t, "rest_for_one", RestForOne.String())
	assert.Equal(t, "transient", Transient.String())
	assert.Equal(t, "backoff", Backoff.String())
	assert.Equal(t, "gave up", EventGaveUp.String())
	assert.Equal(t, "Strategy(9)", Strategy(9).String())
}
