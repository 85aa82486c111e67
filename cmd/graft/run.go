package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/host"
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
			if rf.grace <= 0 {
				return &usageError{fmt.Errorf("--grace %s: give a positive duration, e.g. 30s", rf.grace)}
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
	cmd.Flags().DurationVar(&rf.grace, "grace", host.DefaultGrace, "how long a graceful shutdown may take before plugins are killed")
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

// runCore is `graft run`: load the config, hand it to a host.Host and run
// it until a signal; the host brings the core up and down in its order.
func runCore(ctx context.Context, log *slog.Logger, path string, rf *runFlags) error {
	cfg, err := host.LoadConfig(path)
	if err != nil {
		return err
	}
	h, err := host.New(host.Options{
		Config: cfg, Logger: log, Grace: rf.grace,
		MetricsAddr: rf.metricsAddr, MetricsAddrName: "--metrics-addr",
	})
	if err != nil {
		return err
	}
	return h.Run(ctx)
}
