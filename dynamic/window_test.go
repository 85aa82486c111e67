package dynamic_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
)

// The host <-> plugin path has windows that only show after a while:
// go-plugin's broker forgets the connection info it was sent after 5 s, gRPC
// channels go idle after 30 min by default, and the handle stream and the
// call service sit idle between bursts. Each test here waits past one of
// them and then makes a call from a handler, which must work.

// lateCallAfter starts a module with a call service, waits d with the module
// idle, and checks that a handler's call still reaches the host.
func lateCallAfter(t *testing.T, d time.Duration) {
	t.Helper()
	cfg := config(t, "echo")
	c := echoCaller{got: make(chan dynamic.CallRequest, 16)}
	cfg.Caller = c
	m := start(t, cfg)
	idle := time.NewTimer(d)
	defer idle.Stop()
	select {
	case <-idle.C:
	case <-m.Exited():
		t.Fatalf("module exited while idle: %v", m.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 2, Data: []byte(`{}`)}, Messages: msgs("call:b:late")})
	require.NoError(t, err)
	require.Empty(t, res.Results[0].Err, "a call %s after start", d)
	require.Equal(t, "answer to late", string(res.Results[0].Reply))
}

// The broker's 5 s window: the first call of a module comes 7 s after it
// started (it failed for good with "the host offers no call service").
func TestCallAfterBrokerWindow(t *testing.T) { lateCallAfter(t, 7*time.Second) }

// A call at 1 s, well inside every window.
func TestCallOneSecondAfterStart(t *testing.T) { lateCallAfter(t, time.Second) }

// A call 30 s after start: past the broker window, gRPC's default
// keepalive-free idle periods and the default call and handle timeouts.
func TestCallThirtySecondsAfterStart(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 30 s")
	}
	lateCallAfter(t, 30*time.Second)
}

// GRAFT_LONG_WINDOW=10m runs the 10-minute case (scripts/long-windows.sh):
// past gRPC's 30-minute idle timeout it would need 31m, which the script
// allows too.
func TestCallLongAfterStart(t *testing.T) {
	v := os.Getenv("GRAFT_LONG_WINDOW")
	if v == "" {
		t.Skip("set GRAFT_LONG_WINDOW (e.g. 10m) to run")
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "GRAFT_LONG_WINDOW")
	lateCallAfter(t, d)
}

// Calls keep working between bursts separated by more than the broker's
// window, and many handlers of one shared module call at once.
func TestConcurrentCallsAcrossIdleGaps(t *testing.T) {
	cfg := config(t, "echo")
	c := echoCaller{got: make(chan dynamic.CallRequest, 1024)}
	cfg.Caller = c
	m := start(t, cfg)
	for burst := range 2 {
		if burst > 0 {
			gap := time.NewTimer(6 * time.Second)
			<-gap.C
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				actor := fmt.Sprintf("a%d", i)
				res, err := m.Handle(ctx, dynamic.Batch{Actor: actor, State: dynamic.State{Schema: 2, Data: []byte(`{}`)}, Messages: msgs("call:b:" + actor)})
				switch {
				case err != nil:
					errs <- err
				case res.Results[0].Err != "":
					errs <- fmt.Errorf("%s: %s", actor, res.Results[0].Err)
				case string(res.Results[0].Reply) != "answer to "+actor:
					errs <- fmt.Errorf("%s got %q", actor, res.Results[0].Reply)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("burst %d: %v", burst, err)
		}
	}
	for len(c.got) > 0 {
		<-c.got
	}
}
