package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control/api"
)

// clientFlags are the flags every command shares: where the core is, and
// how long to wait for it.
type clientFlags struct {
	config  string
	socket  string
	timeout time.Duration
}

// defaultConfigFile is the config a command uses, from the current folder,
// when nothing else says where the core is.
const defaultConfigFile = "graft.yaml"

// socketPath finds the core, in this order: --config, --socket,
// $GRAFT_SOCKET, $GRAFT_CONFIG, then ./graft.yaml when there is one.
func (f *clientFlags) socketPath(e *env) (string, error) {
	fromConfig := func(path, how string) (string, error) {
		s, err := config.Socket(path)
		if err != nil {
			return "", fmt.Errorf("find the core's socket%s: %w", how, err)
		}
		return s, nil
	}
	switch {
	case f.config != "":
		return fromConfig(f.config, "")
	case f.socket != "":
		return f.socket, nil
	case e.getenv("GRAFT_SOCKET") != "":
		return e.getenv("GRAFT_SOCKET"), nil
	case e.getenv("GRAFT_CONFIG") != "":
		return fromConfig(e.getenv("GRAFT_CONFIG"), " from $GRAFT_CONFIG")
	}
	if fi, err := os.Stat(defaultConfigFile); err == nil && fi.Mode().IsRegular() {
		return fromConfig(defaultConfigFile, " from ./"+defaultConfigFile)
	}
	return "", &usageError{errors.New("which core? give --config FILE or --socket PATH, set GRAFT_SOCKET or GRAFT_CONFIG, or run in the folder of its " + defaultConfigFile)}
}

// client connects to the core and returns a context bounded by --timeout
// (or def when --timeout is 0).
func (f *clientFlags) client(cmd *cobra.Command, e *env, def time.Duration) (*api.Client, context.Context, context.CancelFunc, error) {
	sock, err := f.socketPath(e)
	if err != nil {
		return nil, nil, nil, err
	}
	d := f.timeout
	if d <= 0 {
		d = def
	}
	return f.clientWithin(cmd, e, sock, d)
}

// clientWithin connects to the core at sock with a context bounded by d
// exactly, for commands whose --timeout means something else (call). A
// $TRACEPARENT (a W3C traceparent, as a traced script exports it) makes
// the command's sends, calls and upgrades part of that trace.
func (f *clientFlags) clientWithin(cmd *cobra.Command, e *env, sock string, d time.Duration) (*api.Client, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), d)
	c := api.NewClient(sock)
	c.TraceParent = traceParent(e)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

// traceParent is $TRACEPARENT if it is a W3C traceparent; anything else
// is ignored with a warning, so that a stray value (a trailing carriage
// return, a copy of the wrong variable) never stops a send.
func traceParent(e *env) string {
	v := e.getenv("TRACEPARENT")
	if v == "" || core.ParseTraceParent(v).IsValid() {
		return v
	}
	fmt.Fprintf(e.stderr, "graft: ignoring $TRACEPARENT %q: not a W3C traceparent (00-<32 hex digits>-<16 hex digits>-<2 hex digits>); the command starts no trace of its own\n", clipped(v, 80))
	return ""
}

// clipped is s cut to n bytes, marked, for a message that quotes input.
func clipped(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// printJSON writes v as indented JSON, the --json output of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "1.0.0 -> 2.0.0", not "\u003e": this is not HTML
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// readPayload returns arg, or stdin when arg is "-".
func readPayload(e *env, arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("read payload from stdin: %w", err)
	}
	return b, nil
}

// exactArgs is cobra.ExactArgs with an error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Errorf("%s takes %s (got %d argument(s)); see `%s --help`", cmd.CommandPath(), names, len(args), cmd.CommandPath())}
		}
		return nil
	}
}

// stdinIsTerminal says whether stdout should be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
