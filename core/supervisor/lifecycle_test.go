package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffGrowsAndResetsAfterAStableRun(t *testing.T) {
	h := newHarness(t)
	const period = 2 * time.Second
	s := h.newSup(Spec{MaxRestarts: 100, Period: period, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		h.spec("a", opts{}))
	for i := range 5 {
		h.awaitState(s, "a", Running, i+1)
		h.instance("a", i).crash(errCrash)
	}
	h.awaitState(s, "a", Running, 6)

	var delays []time.Duration
	var gaps []time.Duration
	var restartingAt time.Time
	for _, ev := range h.eventsCopy() {
		switch ev.Kind {
		case EventRestarting:
			delays = append(delays, ev.Delay)
			restartingAt = ev.Time
		case EventStarting:
			if !restartingAt.IsZero() {
				gaps = append(gaps, ev.Time.Sub(restartingAt))
				restartingAt = time.Time{}
			}
		}
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{20 * ms, 40 * ms, 80 * ms, 100 * ms, 100 * ms}, delays, "doubling, capped")
	require.Len(t, gaps, 5)
	for i, g := range gaps {
		assert.GreaterOrEqual(t, g, delays[i], "restart %d came before its delay", i)
	}

	// Let the child run stably for Period: the next delay starts over.
	var startedAt time.Time
	h.await("sixth started event", func() bool {
		n := 0
		for _, ev := range h.eventsCopy() {
			if ev.Kind == EventStarted {
				n++
				startedAt = ev.Time
			}
		}
		return n == 6
	})
	time.Sleep(time.Until(startedAt.Add(period + 10*ms))) // the stable run itself, not a wait for a result
	h.instance("a", 5).crash(errCrash)
	h.awaitState(s, "a", Running, 7)
	evs := h.eventsCopy()
	var last time.Duration
	for _, ev := range evs {
		if ev.Kind == EventRestarting {
			last = ev.Delay
		}
	}
	assert.Equal(t, 20*ms, last, "backoff reset after a stable run")
}

func TestStartTimeoutIsAFailureAndTheLateChildIsStopped(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	release := make(chan struct{})
	// Attempt 0 ignores its ctx and returns a Child long after the timeout;
	// attempt 1 honours its ctx and hangs until it is cancelled; then it works.
	hang := h.spec("hang", opts{pre: func(ctx context.Context, attempt int) error {
		switch attempt {
		case 0:
			<-release
		case 1:
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}})
	hang.StartTimeout = 100 * time.Millisecond
	spec := fast(OneForOne)
	spec.OnEvent = h.onEvent
	s, err := New(spec, hang)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	st, _ := status(s, "hang")
	assert.Equal(t, Running, st.State)
	assert.GreaterOrEqual(t, st.Restarts, 2, "two timed-out starts count as two failures")
	assert.True(t, h.hasEvent(EventStartFailed, "hang", ErrStartTimeout))

	late := h.instances("hang") // the instance number attempt 0 will create
	close(release)
	h.await("late child of attempt 0 stopped", func() bool {
		return h.instances("hang") == late+1 && h.count(fmt.Sprintf("stopped hang#%d", late)) == 1
	})
	st, _ = status(s, "hang")
	assert.Equal(t, Running, st.State, "the late Child does not replace the running one")
	h.stop(s)
	assert.True(t, h.allInstancesDone())
	checkGoroutines(t, base)
}

func TestStopWaitsForStartsInFlightAndStopsTheirLateChild(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	entered := make(chan struct{})
	// The start notices its cancellation only a little late and then still
	// returns a Child: Stop must wait for it and stop that Child.
	slow := h.spec("slow", opts{pre: func(ctx context.Context, _ int) error {
		close(entered)
		<-ctx.Done()
		return nil
	}})
	s, err := New(Spec{}, slow)
	require.NoError(t, err)
	startCtx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	require.ErrorIs(t, s.Start(startCtx), context.Canceled)
	h.stop(s)
	assert.Equal(t, 1, h.count("stopped slow#0"), "the Child returned during Stop was stopped: %v", h.logCopy())
	assert.True(t, h.allInstancesDone())
	checkGoroutines(t, base)
}

func TestExitDuringOrRightAfterStartIsSeen(t *testing.T) {
	h := newHarness(t)
	once := func(o opts) opts { return o }
	during := h.spec("during", once(opts{exitInStart: true}))
	during.Restart = Transient
	after := h.spec("after", once(opts{exitAfterStart: true}))
	after.Restart = Transient
	spec := fast(OneForOne)
	spec.MaxRestarts = 2
	spec.OnEvent = h.onEvent
	s, err := New(spec, during, after)
	require.NoError(t, err)
	_ = s.Start(context.Background()) // may already report the give-up
	// Each crashes on every start: the supervisor sees every exit and gives up.
	h.awaitDone(s)
	require.ErrorIs(t, s.Err(), ErrIntensity)
	assert.True(t, h.hasEvent(EventExited, "during", errCrash))
	assert.True(t, h.hasEvent(EventExited, "after", errCrash))
}

func TestRequiresOrderStartsAndIndependentChildrenStartConcurrently(t *testing.T) {
	h := newHarness(t)
	var barrier sync.WaitGroup
	barrier.Add(2)
	// a and b each wait for the other to be inside Start: only concurrent
	// starts get through.
	meet := func(ctx context.Context, attempt int) error {
		if attempt > 0 {
			return nil
		}
		barrier.Done()
		met := make(chan struct{})
		go func() { barrier.Wait(); close(met) }()
		select {
		case <-met:
			return nil
		case <-ctx.Done():
			return errors.New("starts were not concurrent")
		}
	}
	// c is listed first but requires a and b.
	s := h.newSup(Spec{MaxRestarts: -1}, h.spec("c", opts{}, "a", "b"), h.spec("a", opts{pre: meet}), h.spec("b", opts{pre: meet}))
	startC := h.index("start c", 0)
	assert.Greater(t, startC, h.index("up a#0", 0), "c starts after a is up: %v", h.logCopy())
	assert.Greater(t, startC, h.index("up b#0", 0), "c starts after b is up: %v", h.logCopy())
	var ids []string
	for _, st := range s.Children() {
		ids = append(ids, st.ID)
		assert.Equal(t, Running, st.State)
	}
	assert.Equal(t, []string{"a", "b", "c"}, ids, "start order puts requirements first")
}

func TestAddTerminateRestartDelete(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s := h.newSup(fast(OneForAll), h.spec("a", opts{}))

	require.NoError(t, s.Add(ctx, h.spec("b", opts{}, "a")))
	st, _ := status(s, "b")
	assert.Equal(t, Running, st.State, "Add returns once the child runs")
	require.ErrorIs(t, s.Add(ctx, h.spec("b", opts{})), ErrDuplicateChild)
	require.ErrorIs(t, s.Add(ctx, h.spec("z", opts{}, "nope")), ErrUnknownChild)
	bad := h.spec("bad", opts{pre: func(context.Context, int) error { return errors.New("no such binary") }})
	bad.Restart = Temporary
	err := s.Add(ctx, bad)
	require.ErrorContains(t, err, "no such binary", "Add reports the start error")

	require.NoError(t, s.Terminate(ctx, "b"))
	st, _ = status(s, "b")
	assert.Equal(t, Stopped, st.State)
	assert.Equal(t, 1, h.count("stopped b#0"))
	require.NoError(t, s.Terminate(ctx, "b"), "terminating a stopped child is a no-op")

	// A strategy does not restart a terminated child.
	h.instance("a", 0).crash(errCrash)
	h.awaitState(s, "a", Running, 2)
	assert.Equal(t, 1, h.instances("b"))

	require.ErrorIs(t, s.Delete(ctx, "a"), ErrRunning)
	require.NoError(t, s.Terminate(ctx, "a"))
	require.ErrorIs(t, s.Delete(ctx, "a"), ErrRequired, "b requires a")
	require.NoError(t, s.Restart(ctx, "a"))
	require.NoError(t, s.Restart(ctx, "b"))
	st, _ = status(s, "b")
	assert.Equal(t, Running, st.State)
	require.ErrorIs(t, s.Restart(ctx, "b"), ErrRunning)
	require.ErrorIs(t, s.Delete(ctx, "b"), ErrRunning)
	require.NoError(t, s.Terminate(ctx, "b"))
	require.NoError(t, s.Delete(ctx, "b"))
	_, ok := status(s, "b")
	assert.False(t, ok)
	require.ErrorIs(t, s.Terminate(ctx, "b"), ErrUnknownChild)
	require.ErrorIs(t, s.Restart(ctx, "b"), ErrUnknownChild)

	unstarted, err := New(Spec{})
	require.NoError(t, err)
	require.ErrorIs(t, unstarted.Add(ctx, h.spec("x", opts{})), ErrNotStarted)
	require.NoError(t, unstarted.Stop(ctx))
	<-unstarted.Done()
}

func TestMethodsAnswerPromptlyWhileAStartHangs(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	entered := make(chan struct{})
	hang := h.spec("hang", opts{pre: func(ctx context.Context, _ int) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}})
	hang.StartTimeout = time.Hour
	spec := Spec{OnEvent: h.onEvent}
	s, err := New(spec, hang)
	require.NoError(t, err)
	short, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	require.ErrorIs(t, s.Start(short), context.Canceled, "Start's wait is bounded by its ctx")

	prompt := func(what string, f func(ctx context.Context)) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		within(t, ctx, what, func() { f(ctx) })
	}
	var children []ChildStatus
	prompt("Children", func(context.Context) { children = s.Children() })
	require.Len(t, children, 1)
	assert.Equal(t, Starting, children[0].State)
	var addErr, termErr error
	prompt("Add", func(ctx context.Context) { addErr = s.Add(ctx, h.spec("other", opts{})) })
	require.NoError(t, addErr)
	prompt("Terminate of the hanging child", func(ctx context.Context) { termErr = s.Terminate(ctx, "hang") })
	require.NoError(t, termErr)
	st, _ := status(s, "hang")
	assert.Equal(t, Stopped, st.State)
	h.stop(s)
	checkGoroutines(t, base)
}

func TestStopIsBoundedWhenAChildIgnoresStop(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	never := make(chan struct{})
	stubborn := h.spec("stubborn", opts{ignoreStop: never})
	stubborn.StopTimeout = time.Hour
	s := h.newSup(Spec{}, h.spec("a", opts{}), stubborn)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	guard, gcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer gcancel()
	var stopErr error
	began := time.Now()
	within(t, guard, "Stop", func() { stopErr = s.Stop(ctx) })
	t.Logf("Stop returned after %s: %v", time.Since(began), stopErr)
	// Either the shutdown finished at the deadline or Stop gave up at it.
	h.awaitDone(s)
	// a was asked to stop (with whatever time the deadline left) and exits.
	h.await("the well-behaved child stopped", func() bool { return h.count("stopped a#0") == 1 })
	close(never)
	h.awaitAllDone()
	checkGoroutines(t, base)
}

func TestStopTimeoutBoundsEachChild(t *testing.T) {
	h := newHarness(t)
	never := make(chan struct{})
	defer close(never)
	stubborn := h.spec("stubborn", opts{ignoreStop: never})
	stubborn.StopTimeout = 50 * time.Millisecond
	s := h.newSup(Spec{}, stubborn)
	guard, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	within(t, guard, "Stop", func() { _ = s.Stop(context.Background()) })
	assert.True(t, h.hasEvent(EventStopped, "stubborn", ErrStopTimeout))
}

func TestManyCyclesLeakNoGoroutine(t *testing.T) {
	base := runtime.NumGoroutine()
	for range 50 {
		h := newHarness(t)
		hang := h.spec("hang", opts{pre: func(ctx context.Context, _ int) error { <-ctx.Done(); return ctx.Err() }})
		s, err := New(fast(RestForOne), h.spec("a", opts{}), hang, h.spec("b", opts{exitAfterStart: true}))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Start(ctx)
		require.NoError(t, s.Stop(context.Background()))
		require.True(t, h.allInstancesDone())
	}
	checkGoroutines(t, base)
}

func TestStopAbandonsAStartThatIgnoresItsCtxAndItsChildIsStoppedLater(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	deaf := h.spec("deaf", opts{pre: func(context.Context, int) error {
		close(entered)
		<-release // ignores ctx: a broken Start
		return nil
	}})
	deaf.StopTimeout = 100 * time.Millisecond
	s, err := New(Spec{}, deaf)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	require.Error(t, s.Start(ctx))

	guard, gcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer gcancel()
	within(t, guard, "Stop", func() { _ = s.Stop(context.Background()) })
	h.awaitDone(s)
	// The start goroutine returns a Child after the supervisor is gone: the
	// cleanup armed before the start stops it.
	close(release)
	h.await("orphan child stopped", func() bool { return h.count("stopped deaf#0") == 1 })
	h.awaitAllDone()
	checkGoroutines(t, base)
}

func TestOneForAllRemovesTemporarySiblingsAndRestartsTransientOnes(t *testing.T) {
	h := newHarness(t)
	temp := h.spec("temp", opts{})
	temp.Restart = Temporary
	trans := h.spec("trans", opts{})
	trans.Restart = Transient
	s := h.newSup(fast(OneForAll), h.spec("a", opts{}), temp, trans)
	h.instance("a", 0).crash(errCrash)
	h.awaitState(s, "a", Running, 2)
	h.awaitState(s, "trans", Running, 2)
	_, ok := status(s, "temp")
	assert.False(t, ok, "a temporary sibling stopped by the strategy is removed")
	assert.Equal(t, 1, h.count("stopped temp#0"))
}

func TestRunStopsWhenItsCtxIsCancelled(t *testing.T) {
	h := newHarness(t)
	s, err := New(Spec{OnEvent: h.onEvent}, h.spec("a", opts{}), h.spec("b", opts{}, "a"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	h.awaitState(s, "b", Running, 1)
	require.Error(t, s.Start(context.Background()), "a second Start is refused")
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err, "a requested stop is a normal exit")
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}
	assert.Less(t, h.index("stopped b#0", 0), h.index("stopped a#0", 0), "dependents stop first")
	require.ErrorIs(t, s.Start(context.Background()), ErrStopped)
	require.ErrorIs(t, s.Add(context.Background(), h.spec("c", opts{})), ErrStopped)
}
