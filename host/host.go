package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/upgrade"
)

// DefaultGrace is how long a graceful stop may take when Options.Grace is
// zero: long enough for a slow batch to commit, short enough for a
// service manager's stop timeout.
const DefaultGrace = 30 * time.Second

// Options configure a Host. Only Config is required.
type Options struct {
	// Config is the core's validated config: from LoadConfig (a YAML
	// file) or built in Go from config.Defaults. New checks it again and
	// keeps it, so do not change it afterwards.
	Config *config.Config
	// Logger receives the core's logs (default slog.Default()).
	Logger *slog.Logger
	// MetricsAddr, when set, serves Prometheus metrics on
	// http://MetricsAddr/metrics, e.g. "127.0.0.1:9464" (port 0 picks a
	// free one: see Host.MetricsAddr). The endpoint has no
	// authentication, so one that listens beyond loopback is warned about.
	MetricsAddr string
	// MetricsAddrName is what the operator knows MetricsAddr by, named in
	// its errors and warnings (default "MetricsAddr"; graft run gives
	// "--metrics-addr").
	MetricsAddrName string
	// HTTPAddr, when set, serves the web view (package web) there, e.g.
	// "127.0.0.1:8080" (port 0 picks a free one: see Host.WebAddr). On
	// loopback it reads without a token; every change needs HTTPToken,
	// or, when that is empty, a token the core makes and writes to
	// control.dir/http.token. Beyond loopback HTTPToken is required.
	HTTPAddr  string
	HTTPToken string
	// Tracing, if not nil, is the OpenTelemetry tracer provider the core
	// traces its messages and upgrades into; the embedding program owns it.
	// Nil: the one the OTEL_* environment asks for (package tracing),
	// which the host flushes when it stops; none when it asks for none.
	Tracing trace.TracerProvider
	// Grace bounds the graceful stop: after it, batches in flight are
	// abandoned (redelivered at the next start) and plugins are killed
	// (default DefaultGrace).
	Grace time.Duration
	// Exit ends the process when a stop begun by a signal is not over
	// within Grace plus WatchdogSlack (default os.Exit). An embedding
	// program that must not exit that way gives its own.
	Exit func(code int)
}

// Host is one graft core of this process, built by New and run once by
// Run. Its accessors are safe to call from any goroutine.
type Host struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger

	ran   atomic.Bool
	ready chan struct{}
	// metricsAddr is written before ready closes and read after, so the
	// close orders the two.
	metricsAddr string
	webAddr     string
}

// LoadConfig reads and validates the config file at path for a core: as
// config.LoadFor, where a behaviour whose configured binary was deleted
// is not a problem when the binary cache next to the store holds the
// version its actors run (the core then starts from the cache).
func LoadConfig(path string) (*config.Config, error) {
	return config.LoadFor(path, cachedIn)
}

// cachedIn says whether the binary cache of cfg knows behaviour.
func cachedIn(cfg *config.Config, behaviour string) bool {
	return upgrade.Knows(cfg.BinaryCacheDir(), behaviour)
}

// New checks opts and returns a Host ready to Run. It refuses, with every
// problem listed, a config with mistakes (*config.Error) and, like ssh's
// StrictModes, one where anything the core would run or believe could
// have been written by another user (guarantee G9): the config file, the
// store folder, the binary cache and the control folder, and the folders
// on their way. New creates and claims nothing: a second core on the same
// control socket is refused by Run, before it touches anything.
func New(opts Options) (*Host, error) {
	if opts.Config == nil {
		return nil, errors.New("host: Options.Config is nil: load one with host.LoadConfig or build one with config.Defaults")
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("host: Options.Grace is %s: give a positive duration, or 0 for %s", opts.Grace, DefaultGrace)
	}
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MetricsAddrName == "" {
		opts.MetricsAddrName = "MetricsAddr"
	}
	if opts.Exit == nil {
		opts.Exit = os.Exit
	}
	cfg := opts.Config
	if err := cfg.CheckFor(cachedIn); err != nil {
		return nil, err
	}
	err := errors.Join(
		fileTrusted(cfg.File),
		trust.CheckDir(cfg.Store.Path, "store folder (store.path)"),
		trust.CheckDir(cfg.BinaryCacheDir(), "binary cache"),
		trust.CheckDir(cfg.Control.Dir, "control folder (control.dir)"),
	)
	if err != nil {
		return nil, fmt.Errorf("graft refuses to start: another user could change what this core runs (nothing was started):\n%w", err)
	}
	return &Host{opts: opts, cfg: cfg, log: opts.Logger, ready: make(chan struct{})}, nil
}

// fileTrusted checks the config file, when there is one (a config built
// in Go has none).
func fileTrusted(path string) error {
	if path == "" {
		return nil
	}
	return trust.GivenFile(path, "config file")
}

// Socket is the control socket the core answers on (control.dir/graft.sock):
// point a control.Client at it.
func (h *Host) Socket() string { return h.cfg.Control.Socket }

// Ready is closed once Run has started the core and serves the control
// API (actors that are slow to start go on starting in the background,
// visible in the status). It never closes if Run fails before that, so
// wait on it together with Run's return.
func (h *Host) Ready() <-chan struct{} { return h.ready }

// MetricsAddr is the address the metrics endpoint listens on (the port
// chosen when Options.MetricsAddr asked for port 0), or "" when metrics
// are off. It is set once Ready is closed.
func (h *Host) MetricsAddr() string {
	select {
	case <-h.ready:
		return h.metricsAddr
	default:
		return ""
	}
}

// startErr says that starting the core failed, naming its config file.
func (h *Host) startErr(err error) error {
	if h.cfg.File == "" {
		return fmt.Errorf("start the core: %w", err)
	}
	return fmt.Errorf("start the core from %s: %w", h.cfg.File, err)
}
