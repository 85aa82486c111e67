package host

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/testbin"
)

// TestShutdownWatchdogEndsAHungShutdown: after a real SIGTERM, a graceful
// stop that does not finish within its grace (plus WatchdogSlack)
// ends with exit status 1 and a line saying why; a stop that finishes
// first, or no signal at all, exits nothing.
func TestShutdownWatchdogEndsAHungShutdown(t *testing.T) {
	logs := &testbin.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	exited := make(chan int, 1)
	exit := func(code int) { exited <- code }
	// The test's own subscription keeps a SIGTERM from ever killing the
	// test binary, and tells when the runtime has delivered it.
	seen := make(chan os.Signal, 4)
	signal.Notify(seen, syscall.SIGTERM)
	defer signal.Stop(seen)
	term := func() {
		t.Helper()
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			t.Fatal("SIGTERM was not delivered")
		}
	}

	stop := shutdownWatchdog(log, 100*time.Millisecond, exit)
	start := time.Now()
	term()
	select {
	case code := <-exited:
		assert.Equal(t, 1, code)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond+WatchdogSlack)
	case <-time.After(30 * time.Second):
		t.Fatal("the watchdog did not end a shutdown hung past its grace")
	}
	stop()
	assert.Contains(t, logs.String(), "graceful shutdown did not finish within its grace period")

	stop = shutdownWatchdog(log, 100*time.Millisecond, exit)
	term()
	stop() // the graceful stop finished in time
	timer := time.NewTimer(100*time.Millisecond + 2*WatchdogSlack)
	defer timer.Stop()
	select {
	case <-exited:
		t.Fatal("the watchdog exited after the shutdown finished")
	case <-timer.C:
	}
}
