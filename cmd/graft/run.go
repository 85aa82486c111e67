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
	"github.com/graft-host/graft/internal/trust"
)

// runFlags are `graft run`'s own flags.
type runFlags struct {
	logFormat   string
	logLevel    string
	metricsAddr string
	grace       time.Duration
	// The web view: its address, and the token changes need (given, or
	// read from a file only its owner can read).
	httpAddr, httpToken, httpTokenFile string
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

--http 127.0.0.1:8080 serves the web view: actors, one actor's state,
timers and dead letters, behaviours, upgrades in progress and history,
updated live. On loopback reading needs nothing more; every change (retry
a dead letter, promote or abort a canary) needs the token, which the core
makes, writes to control.dir/http.token and logs in the view's address
(…/#token=…), unless --http-token or --http-token-file gives one. Beyond
loopback a token must be given, and reads need it too.

On SIGINT or SIGTERM the core stops gracefully within --grace: each actor's
batch in flight commits, plugins stop, the store closes. A second signal
forces the stop. Messages still queued are kept and processed after the
next start.`,
		Example: `  graft run --config graft.yaml
  graft run --config /etc/graft/graft.yaml --log-format json --metrics-addr 127.0.0.1:9464
  graft run --config graft.yaml --http 127.0.0.1:8080`,
		Args: exactArgs(0, "no arguments (the config is --config FILE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cf.config == "" {
				return &usageError{errors.New("graft run needs --config FILE (see `graft run --help` for an example config)")}
			}
			if rf.grace <= 0 {
				return &usageError{fmt.Errorf("--grace %s: give a positive duration, e.g. 30s", rf.grace)}
			}
			if err := rf.readToken(); err != nil {
				return err
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
	cmd.Flags().StringVar(&rf.httpAddr, "http", "", "serve the web view on this address, e.g. 127.0.0.1:8080 (default: off)")
	cmd.Flags().StringVar(&rf.httpToken, "http-token", "", "the token the web view's changes (and, beyond loopback, reads) need (default on loopback: made at start)")
	cmd.Flags().StringVar(&rf.httpTokenFile, "http-token-file", "", "read --http-token from this file (mode 0600 or 0400)")
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
		HTTPAddr: rf.httpAddr, HTTPToken: rf.httpToken,
	})
	if err != nil {
		return err
	}
	return h.Run(ctx)
}

// readToken checks the web view's flags and reads --http-token-file: a
// file that others can read holds no secret, and is refused.
func (rf *runFlags) readToken() error {
	switch {
	case rf.httpTokenFile != "" && rf.httpToken != "":
		return &usageError{errors.New("--http-token and --http-token-file do not go together: give one")}
	case (rf.httpToken != "" || rf.httpTokenFile != "") && rf.httpAddr == "":
		return &usageError{errors.New("--http-token and --http-token-file go with --http ADDR, the web view they protect")}
	case rf.httpTokenFile == "" && rf.httpToken != "" && len(rf.httpToken) < 16:
		return &usageError{fmt.Errorf("--http-token holds %d characters: give at least 16 (e.g. `openssl rand -hex 16`), better through --http-token-file, which other users cannot read from the process list", len(rf.httpToken))}
	case rf.httpTokenFile == "":
		return nil
	}
	b, err := trust.ReadSecret(rf.httpTokenFile, "--http-token-file")
	if err != nil {
		return err
	}
	if rf.httpToken = strings.TrimSpace(string(b)); len(rf.httpToken) < 16 {
		return fmt.Errorf("--http-token-file %s holds %d characters: give a token of at least 16 (e.g. `openssl rand -hex 16`)", rf.httpTokenFile, len(rf.httpToken))
	}
	return nil
}
