package host

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// WatchdogSlack is how long after Options.Grace the watchdog lets a
// graceful stop run on: closing the store and the control socket after
// the actors.
const WatchdogSlack = 2 * time.Second

// shutdownWatchdog makes SIGINT and SIGTERM always end the process: from
// the first signal, the graceful stop gets grace (plus WatchdogSlack),
// then the process exits with status 1 by itself (exit is Options.Exit).
// A graceful stop should never take that long; should an engine wait or a
// store call hang anyway, exiting is as safe as kill -9, which loses
// nothing acknowledged. The returned stop ends the watchdog.
func shutdownWatchdog(log *slog.Logger, grace time.Duration, exit func(code int)) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-sigs:
		}
		t := time.NewTimer(grace + WatchdogSlack)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			log.Error("graceful shutdown did not finish within its grace period; exiting now (everything acknowledged is durable, the next start recovers the rest)",
				"grace", grace.String())
			exit(1)
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
