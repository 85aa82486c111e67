package dynamic

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/internal/proc"
)

// Sentinel errors the core branches on (with errors.Is).
var (
	// ErrBadBinary: the binary cannot be this behaviour's plugin (not a
	// plugin, truncated, not executable, wrong cookie or protocol version,
	// wrong behaviour name, sha256 mismatch). Retrying will not help; a
	// supervisor should stop restarting it and report it.
	ErrBadBinary = errors.New("bad plugin binary")
	// ErrStartTimeout: the plugin did not complete its start within the
	// start timeout. It was killed.
	ErrStartTimeout = errors.New("plugin start timed out")
	// ErrCrashed: the plugin process exited when it was not asked to.
	ErrCrashed = errors.New("plugin crashed")
	// ErrHang: the plugin did not answer a batch within the handle timeout.
	// The host killed the module.
	ErrHang = errors.New("plugin hung")
	// ErrBadResponse: the plugin answered something that breaks the
	// protocol (e.g. a wrong number of results). The batch had no effect.
	ErrBadResponse = errors.New("plugin answered a malformed response")
	// ErrBatchFailed: the plugin refused a whole batch (e.g. it could not
	// decode the state). Nothing in the batch was applied.
	ErrBatchFailed = errors.New("plugin failed the batch")
	// ErrInitFailed: the behaviour's Init failed (or panicked) for a Batch
	// with Init set. Nothing in the batch was applied; unlike
	// ErrBatchFailed, it says nothing bad of the module process.
	ErrInitFailed = errors.New("plugin's Init failed")
	// ErrNoMigration: the plugin cannot migrate between the two schemas.
	ErrNoMigration = errors.New("migration not supported by the plugin")
	// ErrStopped: the module was stopped; the call was not delivered or its
	// answer was abandoned.
	ErrStopped = errors.New("module stopped")
	// ErrMemoryLimit: the module went over its memory limit
	// (Config.Resources.Memory) and the kernel killed it. A *CrashError
	// matches it as well as ErrCrashed.
	ErrMemoryLimit = errors.New("plugin went over its memory limit")
)

// Exit describes how a plugin process ended: exit code or killing signal.
type Exit = proc.Exit

// StartError reports a failed Start: which binary, what was wrong, and what
// the plugin said. It matches ErrBadBinary or ErrStartTimeout with
// errors.Is when the binary (or its start) is at fault.
type StartError struct {
	Path    string // the binary
	Problem string // what was wrong, in words
	Exit    *Exit  // how the process ended, if it ran and ended
	Stderr  string // the first lines it wrote on stderr, if any
	Kind    error  // ErrBadBinary, ErrStartTimeout, or nil (host-side failure)
	Err     error  // underlying cause, if any
	// Source and Version, when set, name the binary as its user knows it:
	// the file they built (Path is then the core's cached copy of it) and
	// its code version, if known. See WithSource.
	Source, Version string
}

// WithSource returns a copy of e that names source (and code version,
// "" if unknown) as the binary, with Path, the cached copy the core ran,
// as a detail.
func (e *StartError) WithSource(source, version string) *StartError {
	c := *e
	c.Source, c.Version = source, version
	return &c
}

// Error names the binary first, then the problem, then the evidence.
func (e *StartError) Error() string {
	var b strings.Builder
	switch {
	case e.Source != "" && e.Version != "":
		fmt.Fprintf(&b, "graft: start plugin %s (version %s; cached as %s): %s", e.Source, e.Version, e.Path, e.Problem)
	case e.Source != "":
		fmt.Fprintf(&b, "graft: start plugin %s (cached as %s): %s", e.Source, e.Path, e.Problem)
	default:
		fmt.Fprintf(&b, "graft: start plugin %s: %s", e.Path, e.Problem)
	}
	if e.Exit != nil {
		fmt.Fprintf(&b, " (process %s)", e.Exit)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if s := headLines(e.Stderr, 6, 512); s != "" {
		fmt.Fprintf(&b, "; plugin stderr: %q", s)
	}
	return b.String()
}

// headLines is the first n lines of s, trimmed, at most limit bytes, with
// "..." where it was cut: what a plugin said first is what says why.
func headLines(s string, n, limit int) string {
	s = strings.TrimSpace(s)
	cut := false
	if lines := strings.SplitAfterN(s, "\n", n+1); len(lines) > n {
		s, cut = strings.TrimSpace(strings.Join(lines[:n], "")), true
	}
	if len(s) > limit {
		s, cut = s[:limit], true
	}
	if cut {
		s += "..."
	}
	return s
}

// Unwrap exposes the kind and the cause to errors.Is/As.
func (e *StartError) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// CrashError reports a plugin process that exited on its own (or was
// killed by something other than graft's Stop). Matches ErrCrashed.
type CrashError struct {
	Behaviour, Version string
	Pid                int
	Exit               Exit
	Reason             string // why graft killed it, if it did (e.g. a hang)
}

// Error names the module and how it ended.
func (e *CrashError) Error() string {
	s := fmt.Sprintf("graft: plugin %s %s (pid %d) exited: %s", e.Behaviour, e.Version, e.Pid, e.Exit)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrCrashed) true, and ErrMemoryLimit too if
// the kernel killed the module over its memory limit.
func (e *CrashError) Unwrap() []error {
	if e.Exit.OverMemory {
		return []error{ErrCrashed, ErrMemoryLimit}
	}
	return []error{ErrCrashed}
}

// HangError reports a batch the plugin did not answer in time. The module
// has been killed; matches ErrHang.
type HangError struct {
	Behaviour, Version string
	Pid                int
	Actor              string
	BatchID            uint64
	After              time.Duration
}

// Error names the module, the actor and the timeout.
func (e *HangError) Error() string {
	return fmt.Sprintf("graft: plugin %s %s (pid %d) hung: no answer to batch %d for actor %q within %s; module killed",
		e.Behaviour, e.Version, e.Pid, e.BatchID, e.Actor, e.After)
}

// Unwrap makes errors.Is(err, ErrHang) true.
func (e *HangError) Unwrap() error { return ErrHang }
