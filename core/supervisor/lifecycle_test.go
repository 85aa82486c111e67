package supervisor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		once := func(o opts) opts { return o }
		during := h.spec("during", once(opts{exitInStart: true}))
		during.Restart = Transient
		after := h.spec("after", once(opts{exitAfterStart: true}))
		after.Restart = Transient
		spec := fast(OneForOne)
		spec.MaxRestarts = 2
		s := h.build(spec, during, after)
		_ = s.Start(context.Background()) // may already report the give-up
		// Each crashes on every start: the supervisor sees every exit and gives up.
		h.awaitDone(s)
		require.ErrorIs(t, s.Err(), ErrIntensity)
		assert.True(t, h.hasEvent(EventExited, "during", errCrash))
		assert.True(t, h.hasEvent(EventExited, "after", errCrash))
	})
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

// TestNotifierChildrenExitsAreSeen: a child that reports its own exit
// (Notifier) is restarted after a crash, and the exit of one that exits
// during its Start is seen too: the supervisor learns of them from
// OnDone alone.
func TestNotifierChildrenExitsAreSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		s := h.newSup(fast(OneForOne), h.spec("a", opts{notify: true}))
		h.instance("a", 0).crash(errCrash)
		h.awaitState(s, "a", Running, 2)
		assert.True(t, h.hasEvent(EventExited, "a", errCrash))

		during := h.spec("during", opts{notify: true, exitInStart: true})
		during.Restart = Temporary
		_ = s.Add(ctx, during)
		h.await("the exit during Start", func() bool { return h.hasEvent(EventExited, "during", errCrash) })
		require.NoError(t, s.Stop(ctx))
		h.awaitDone(s)
	})
}

// TestEnrollReturnsBeforeTheFirstStart: Enroll supervises a child at once
// and leaves its start to run; the child then runs as an added one does,
// and Enroll refuses what Add refuses.
func TestEnrollReturnsBeforeTheFirstStart(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s := h.newSup(fast(OneForOne), h.spec("a", opts{}))
	release := make(chan struct{})
	slow := h.spec("slow", opts{pre: func(ctx context.Context, _ int) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	require.NoError(t, s.Enroll(ctx, slow), "Enroll does not wait for the start")
	st, ok := status(s, "slow")
	require.True(t, ok, "the child is supervised")
	assert.NotEqual(t, Running, st.State)
	close(release)
	h.awaitState(s, "slow", Running, 1)
	require.ErrorIs(t, s.Enroll(ctx, h.spec("slow", opts{})), ErrDuplicateChild)
	require.ErrorIs(t, s.Enroll(ctx, h.spec("z", opts{}, "nope")), ErrUnknownChild)
	require.NoError(t, s.Stop(ctx))
	h.awaitDone(s)
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
