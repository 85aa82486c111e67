package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/buildinfo"
	"github.com/graft-host/graft/internal/metrics"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/rollout"
	"github.com/graft-host/graft/tracing"
	"github.com/graft-host/graft/upgrade"
)

// startWait is how long Run waits for every actor's first start before it
// serves the control API; actors still starting go on in the background.
const startWait = time.Second

// serverStopTimeout bounds the stop of the control API and the metrics
// endpoint, once the core itself has stopped.
const serverStopTimeout = 5 * time.Second

// parts are what Run brought up, for the stop to take down.
type parts struct {
	ctl          *control.Listener
	metricsL     net.Listener
	metrics      *metrics.Metrics
	mgr          *upgrade.Manager
	core         *core.Core
	stopWatching context.CancelFunc
	srv          *control.Server
	served       chan error
	metricsSrv   *http.Server
	webL         net.Listener
	webLoopback  bool
	webToken     string
	webTokenFile string
	webSrv       *http.Server
	cluster      *clusterParts // nil unless the core is a cluster member
	// gate served the control socket while the core waited for its
	// store (nil if it never had to): it then serves srv's API.
	gate *control.Gate
	// announcer is the cluster's rollout while this member is in it, for
	// the upgrade manager's BeforeMove (parts.announce).
	announcer atomic.Pointer[rollout.Rollout]
	// tracing is what the core and the upgrade manager trace into (nil:
	// nothing); ownTracing is set when the host made it (tracing.go).
	tracing    trace.TracerProvider
	ownTracing *tracing.Provider
	// log is the host's logger, for what the stop can only report.
	log *slog.Logger
}

// release frees what the stop of the servers did not: the watcher, the
// metrics listener and, last, the control socket and its lock, once the
// store is closed.
func (p *parts) release() {
	if p.stopWatching != nil {
		p.stopWatching()
	}
	p.leaveCluster()
	if p.metricsL != nil {
		p.metricsL.Close()
	}
	if p.webL != nil {
		p.webL.Close()
	}
	if p.webTokenFile != "" {
		_ = os.Remove(p.webTokenFile) // best effort: a stale token opens nothing once the core is gone
	}
	if p.gate != nil && p.srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
		_ = p.gate.Shutdown(ctx) // the start failed after it waited: no core behind it
		cancel()
	}
	p.stopTracing() // a start that failed: Run did not flush it
	if p.ctl != nil {
		p.ctl.Close()
	}
}

// shutdownControl stops whichever server answers on the control socket.
func (p *parts) shutdownControl(ctx context.Context) error {
	if p.gate != nil {
		return p.gate.Shutdown(ctx)
	}
	return p.srv.Shutdown(ctx)
}

// Run starts the core in the order the package doc draws, closes Ready,
// and runs until ctx ends, a SIGINT or SIGTERM arrives, or the root
// supervisor gives up; then it stops gracefully within Options.Grace (a
// second signal forces the stop) and returns. It returns nil after a
// clean stop, a *control.RunningError (errors.Is control.ErrRunning) when
// another core holds the control socket, and the first failure otherwise.
// Messages still queued stay in the store for the next start. A Host runs
// once.
func (h *Host) Run(ctx context.Context) error {
	if !h.ran.CompareAndSwap(false, true) {
		return errors.New("host: Run was already called: a Host runs once (build another with New)")
	}
	p := &parts{log: h.log}
	defer p.release()
	if err := h.start(ctx, p); err != nil {
		if errors.Is(err, errStoppedWaiting) {
			h.log.Info("graft core stopped before it started: its store never answered")
			return nil
		}
		return err
	}
	h.log.Info("graft core starting", "pid", os.Getpid(), "config", h.cfg.File, "socket", h.cfg.Control.Socket,
		"store", h.cfg.Store.Path, "durability", h.cfg.Store.Durability.String(), "actors", len(h.cfg.Actors))
	close(h.ready)
	// RunUntilSignal owns SIGINT and SIGTERM: the first stops gracefully, a
	// second forces it. (A second handler here would see the same first
	// signal and turn one SIGTERM into a forced stop.) The watchdog only
	// bounds how long that stop may take.
	stopWatchdog := shutdownWatchdog(h.log, h.opts.Grace, h.opts.Exit)
	defer stopWatchdog()
	runErr := p.core.RunUntilSignal(ctx, h.opts.Grace)
	p.leaveCluster() // the actors have stopped: hand them over now, not at the lease's expiry

	shutCtx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
	defer cancel()
	errs := []error{runErr, p.shutdownControl(shutCtx), <-p.served}
	if p.metricsSrv != nil {
		errs = append(errs, p.metricsSrv.Shutdown(shutCtx))
	}
	if p.webSrv != nil {
		p.webSrv.Close() // its event streams never end by themselves
	}
	p.stopTracing()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("graft core stopped: %w", err)
	}
	h.log.Info("graft core stopped")
	return nil
}

// start brings everything up, steps 1 to 8 of the package doc. What it
// claimed is in p for release, whether it fails or not.
func (h *Host) start(ctx context.Context, p *parts) error {
	var err error
	// 1. The lock: from here on this is the only core on this control
	// folder and store.
	if p.ctl, err = control.Listen(h.cfg.Control.Socket); err != nil {
		return err
	}
	// 2. Contain each plugin's whole process tree: cgroups where the
	// machine has them, else this process becomes a child subreaper.
	containment, err := dynamic.PrepareHost(ctx, h.log)
	if err != nil {
		return h.startErr(err)
	}
	h.log.Info("plugin processes contained", "how", containment)
	// 3. The metrics address, before anything opens the store.
	if h.opts.MetricsAddr != "" {
		if p.metricsL, err = net.Listen("tcp", h.opts.MetricsAddr); err != nil {
			return fmt.Errorf("%s: %w", h.opts.MetricsAddrName, err)
		}
		b := buildinfo.Read()
		p.metrics = metrics.New(metrics.Build{Version: b.Version, Commit: b.Commit, GoVersion: b.GoVersion})
	}
	if err := h.listenWeb(p); err != nil {
		return err
	}
	if err := h.startTracing(ctx, p); err != nil {
		return err
	}
	// 4 to 6, once the store answers.
	if err := h.waitForStore(ctx, p); err != nil {
		return err
	}
	if err := h.startCore(ctx, p); err != nil {
		return err
	}
	// 7. Finish upgrades a killed core left half done, then watch the
	// configured binaries for rebuilds.
	var watchCtx context.Context
	watchCtx, p.stopWatching = context.WithCancel(ctx)
	p.mgr.Attach(watchCtx, p.core.Upgrades())
	if err := p.mgr.Watch(watchCtx); err != nil {
		h.log.Error("not watching plugin binaries: rebuilds will not upgrade by themselves (use `graft upgrade`)", "err", err)
	}
	// 8.
	h.serve(p)
	h.serveWeb(p)
	h.runCluster(p)
	return nil
}

// startCore opens the binary cache and journal, empties the plugin socket
// folder and starts the core on the cached binaries (steps 4 to 6).
func (h *Host) startCore(ctx context.Context, p *parts) error {
	cfg := h.cfg
	// The upgrade manager runs modules from its sha256-named cache next to
	// the store, and picks each actor's version from its committed state.
	upOpts := upgrade.Options{
		Dir: cfg.BinaryCacheDir(), Logger: h.log.With("component", "upgrade"),
		GroupSize: cfg.Upgrade.GroupSize, MaxPause: cfg.Upgrade.MaxPause, StopOverBudget: cfg.Upgrade.OverBudget == "stop",
		Policies: policies(cfg), Tracing: p.tracerOf(),
	}
	var observer core.Observer
	if cfg.Cluster.Member != "" {
		upOpts.Member = cfg.Cluster.Member
		upOpts.BeforeMove = p.announce
		upOpts.FetchWriter = p.fetchWriter
	}
	if p.metrics != nil {
		upOpts.OnRecord = p.metrics.Upgraded
		observer = p.metrics
	}
	if err := trust.EnsureDir(cfg.Store.Path, "store folder (store.path)"); err != nil { // before the store opens
		return h.startErr(err)
	}
	mgr, err := upgrade.New(upOpts)
	if err != nil {
		return h.startErr(err)
	}
	coreCfg := cfg.Core(h.log, observer)
	coreCfg.Tracing = p.tracerOf()
	if err := clearPluginSockets(coreCfg.SocketDir); err != nil {
		return h.startErr(err)
	}
	if err := mgr.Prepare(&coreCfg); err != nil {
		return h.startErr(err)
	}
	if err := h.joinCluster(ctx, p, &coreCfg, mgr); err != nil {
		return h.startErr(err)
	}
	c, err := core.New(coreCfg)
	if err != nil {
		return h.startErr(err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, startWait)
	err = c.Start(startCtx)
	cancelStart()
	if err != nil {
		if serr := c.Shutdown(context.Background()); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down after the failed start: %w", serr))
		}
		return h.startErr(err)
	}
	p.mgr, p.core = mgr, c
	return nil
}

// clearPluginSockets empties the plugin socket folder (config.Control's
// PluginSockets) and creates it 0700. The caller holds the control
// socket's lock, so no live core uses the folder: what is in it was left
// by a core killed with kill -9.
func clearPluginSockets(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the plugin sockets left in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the plugin socket folder %s: %w", dir, err)
	}
	return nil
}

// serve answers the control API on the claimed socket and, when asked,
// serves the metrics (step 8).
func (h *Host) serve(p *parts) {
	build := buildinfo.Read()
	p.srv = control.NewServer(control.Options{
		Runtime: p.core, Upgrader: controlUpgrader{p.mgr}, Logger: h.log.With("component", "control"),
		Info: control.CoreInfo{PID: os.Getpid(), Socket: h.cfg.Control.Socket, Config: h.cfg.File, Started: time.Now(),
			Version: build.Version, Commit: build.Commit, GoVersion: build.GoVersion},
		Members: p.members(),
	})
	if p.gate != nil {
		p.gate.Open(p.srv) // it has served the socket since the wait for the store
	} else {
		p.served = make(chan error, 1)
		go func() { p.served <- p.srv.Serve(p.ctl) }()
	}
	if p.metrics == nil {
		return
	}
	p.metrics.WatchStatus(p.core.Status)
	p.metrics.WatchUpgrades(upgradePhases(p.mgr), liveModules(p.mgr))
	mux := http.NewServeMux()
	mux.Handle("/metrics", p.metrics.Handler(h.log))
	p.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := p.metricsSrv.Serve(p.metricsL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("metrics server stopped", "err", err)
		}
	}()
	h.metricsAddr = p.metricsL.Addr().String()
	h.log.Info("serving metrics", "addr", h.metricsAddr, "path", "/metrics")
	warnIfExposed(h.log, "metrics", h.opts.MetricsAddrName, p.metricsL)
}
