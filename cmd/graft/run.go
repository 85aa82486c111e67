package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/cmd/graft/internal/metrics"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/upgrade"
)

// runFlags are `graft run`'s own flags.
type runFlags struct {
	logFormat   string
	logLevel    string
	metricsAddr string
	grace       time.Duration
}

func newRunCmd(e *env, cf *clientFlags) *cobra.Command {
	rf := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run a graft core in the foreground",
		Long: `Run starts a graft core from its YAML config and keeps it in the foreground
until SIGINT or SIGTERM, logging to stderr (text, or JSON with --log-format
json). A config with problems is refused before anything starts, with every
problem listed. The control socket (control.dir/graft.sock, mode 0600)
answers the other graft commands; --metrics-addr serves Prometheus metrics
on /metrics.

On SIGINT or SIGTERM the core stops gracefully within --grace: each actor's
batch in flight commits, plugins stop, the store closes. A second signal
forces the stop. Messages still queued are kept and processed after the
next start.`,
		Example: `  graft run --config graft.yaml
  graft run --config /etc/graft/graft.yaml --log-format json --metrics-addr 127.0.0.1:9464`,
		Args: exactArgs(0, "no arguments (the config is --config FILE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cf.config == "" {
				return &usageError{errors.New("graft run needs --config FILE (see `graft run --help` for an example config)")}
			}
			log, err := newLogger(e.stderr, rf.logFormat, rf.logLevel)
			if err != nil {
				return err
			}
			return runCore(cmd.Context(), log, cf.config, rf)
		},
	}
	cmd.Flags().StringVar(&rf.logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&rf.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9464 (default: off)")
	cmd.Flags().DurationVar(&rf.grace, "grace", 30*time.Second, "how long a graceful shutdown may take before plugins are killed")
	return cmd
}

// newLogger builds the process's logger: text for a terminal, JSON for a
// log pipeline.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, &usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &usageError{fmt.Errorf("--log-format %q: use text or json", format)}
}

// runCore is `graft run`: claim the socket first (so a second core is
// refused before it touches the store), build the core, serve the control
// API and metrics, and run until a signal.
func runCore(ctx context.Context, log *slog.Logger, path string, rf *runFlags) error {
	cfg, err := loadTrusted(path)
	if err != nil {
		return err
	}
	l, err := control.Listen(cfg.Control.Socket)
	if err != nil {
		return err
	}
	defer l.Close()
	// Contain each plugin's whole process tree: cgroups where the machine
	// has them, else this process becomes a child subreaper.
	containment, err := dynamic.PrepareHost(ctx, log)
	if err != nil {
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	log.Info("plugin processes contained", "how", containment)

	var observer core.Observer
	var m *metrics.Metrics
	var metricsL net.Listener
	if rf.metricsAddr != "" {
		if metricsL, err = net.Listen("tcp", rf.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsL.Close()
		m = metrics.New()
		observer = m
	}

	// The upgrade manager runs modules from its sha256-named cache next to
	// the store, and picks each actor's version from its committed state.
	upOpts := upgrade.Options{Dir: modulesDir(cfg), Logger: log.With("component", "upgrade")}
	if m != nil {
		upOpts.OnRecord = m.Upgraded
	}
	if err := trust.EnsureDir(cfg.Store.Path, "store folder (store.path)"); err != nil { // before the store opens
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	mgr, err := upgrade.New(upOpts)
	if err != nil {
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	coreCfg := cfg.Core(log, observer)
	// Plugin sockets live in a folder of this core's own, emptied at start:
	// the control-socket lock (held from here on) makes this the only core
	// using it, so what is there was left by a core killed with kill -9.
	coreCfg.SocketDir = filepath.Join(cfg.Control.Dir, "p")
	if err := os.RemoveAll(coreCfg.SocketDir); err != nil {
		return fmt.Errorf("clear plugin sockets left in %s: %w", coreCfg.SocketDir, err)
	}
	if err := os.MkdirAll(coreCfg.SocketDir, 0o700); err != nil {
		return fmt.Errorf("create the plugin socket folder: %w", err)
	}
	if err := mgr.Prepare(&coreCfg); err != nil {
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	c, err := core.New(coreCfg)
	if err != nil {
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, time.Second) // actors go on starting in the background
	err = c.Start(startCtx)
	cancelStart()
	if err != nil {
		if serr := c.Shutdown(context.Background()); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down after the failed start: %w", serr))
		}
		return fmt.Errorf("start the core from %s: %w", cfg.File, err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	mgr.Attach(watchCtx, c)
	if err := mgr.Watch(watchCtx); err != nil {
		log.Error("not watching plugin binaries: rebuilds will not upgrade by themselves (use `graft upgrade`)", "err", err)
	}
	var upgrader control.Upgrader = mgr

	srv := control.NewServer(control.Options{
		Runtime: c, Upgrader: upgrader, Logger: log.With("component", "control"),
		Info: control.CoreInfo{PID: os.Getpid(), Socket: cfg.Control.Socket, Config: cfg.File, Started: time.Now()},
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	var metricsSrv *http.Server
	if m != nil {
		m.WatchStatus(c.Status)
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler(log))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := metricsSrv.Serve(metricsL); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("serving metrics", "addr", metricsL.Addr().String(), "path", "/metrics")
		warnIfExposed(log, "metrics", "--metrics-addr", metricsL)
	}

	log.Info("graft core starting", "pid", os.Getpid(), "config", cfg.File, "socket", cfg.Control.Socket,
		"store", cfg.Store.Path, "durability", cfg.Store.Durability.String(), "actors", len(cfg.Actors))
	// RunUntilSignal owns SIGINT and SIGTERM: the first stops gracefully, a
	// second forces it. (A second handler here would see the same first
	// signal and turn one SIGTERM into a forced stop.) The watchdog only
	// bounds how long that stop may take.
	stopWatchdog := shutdownWatchdog(log, rf.grace, os.Exit)
	defer stopWatchdog()
	runErr := c.RunUntilSignal(ctx, rf.grace)

	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := []error{runErr, srv.Shutdown(shutCtx), <-served}
	if metricsSrv != nil {
		errs = append(errs, metricsSrv.Shutdown(shutCtx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("graft core stopped: %w", err)
	}
	log.Info("graft core stopped")
	return nil
}

// watchdogSlack is how long after --grace the watchdog lets a graceful stop
// run on: closing the store and the control socket after the actors.
const watchdogSlack = 2 * time.Second

// shutdownWatchdog makes SIGINT and SIGTERM always end the process: from
// the first signal, the graceful stop gets --grace (plus watchdogSlack),
// then the process exits with status 1 by itself (exit is os.Exit). A
// graceful stop should never take that long; should an engine wait or a
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
		t := time.NewTimer(grace + watchdogSlack)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			log.Error("graceful shutdown did not finish within --grace; exiting now (everything acknowledged is durable, the next start recovers the rest)",
				"grace", grace.String())
			exit(1)
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
