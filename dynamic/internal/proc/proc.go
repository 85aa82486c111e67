// Package proc starts and owns one plugin process for go-plugin: it is the
// go-plugin runner.Runner graft supplies through ClientConfig.RunnerFunc.
//
// What it adds to go-plugin's default runner, and why:
//   - The plugin leads its own process group (Setpgid), so killing the group
//     kills whatever the plugin spawned and left in it.
//   - Descendants that leave the group (setsid) are contained by a Tree: the
//     module's cgroup, or, on a host without one that is a child subreaper,
//     an Adopter that finds them once re-parented to the host. The tree is
//     killed with the group, whenever the plugin ends or is killed.
//   - No orphans: Pdeathsig=SIGTERM, plus a liveness pipe (the plugin inherits
//     the read end; only this process holds the write end) whose EOF tells
//     the SDK the host is gone. On either, the SDK kills its own cgroup and
//     process group, then itself: a SIGKILL here would leave its tree
//     behind. Pdeathsig alone is not enough: it fires when the forking OS
//     thread exits, not the process. (The reverse risk, a plugin signalled
//     early because its forking thread exited, does not arise: the Go
//     runtime only ends a thread whose goroutine exits while locked to it,
//     and the fork happens on an unlocked goroutine, or, for a cgroup v1
//     start, on a locked one that unlocks once it has left the cgroup.)
//   - Private reaping: the exit of the leader is learnt with
//     waitid(P_PID, pid, WEXITED|WNOWAIT), which does not reap; while the
//     leader is an unreaped zombie its pid and group id stay reserved, so
//     kill(-pgid, SIGKILL) cannot hit a stranger. Only then is it reaped,
//     through os.Process (pidfd-backed). Never wait(-1).
//   - A clean start: the environment is only what the caller gives (graft
//     builds it from a short list), and every descriptor of the host but
//     stdio and the liveness pipe is close-on-exec (see closeOnExec).
//   - stdout and stderr are plain pipes read here, in large chunks: go-plugin
//     sees only the handshake line; everything else goes to an Output, which
//     logs it rate-limited and drops the excess cheaply. The read ends can
//     be closed at a deadline even if an escaped process holds the write
//     ends.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// Exit describes how a process ended.
type Exit struct {
	Code   int            // exit code, -1 if killed by a signal
	Signal syscall.Signal // the signal that killed it, 0 if it exited
	ByHost bool           // the host sent the SIGKILL (stop deadline, hang, failed start)
	// Limit, if set, says which of the module's limits the kernel enforced
	// on it, e.g. "over its memory limit of 64 MiB" (the OOM killer acted
	// in its cgroup).
	Limit string
	// OverMemory: the OOM killer killed a process of the module's cgroup
	// because the module went over its memory limit.
	OverMemory bool
}

// String reads like "exit status 1", "killed by signal: killed" or
// "killed: over its memory limit of 64 MiB".
func (e Exit) String() string {
	var s string
	switch {
	case e.Limit != "" && e.Signal == syscall.SIGKILL && !e.ByHost:
		return "killed: " + e.Limit
	case e.Signal == syscall.SIGKILL && e.ByHost:
		s = "killed by graft with SIGKILL"
	case e.Signal != 0:
		s = "killed by signal: " + e.Signal.String()
	default:
		s = "exit status " + strconv.Itoa(e.Code)
	}
	if e.Limit != "" {
		s += " (" + e.Limit + ")"
	}
	return s
}

// Process is one plugin process. Create it with New, hand it to go-plugin as
// its runner; Exited, Exit and KillGroup serve graft's own supervision.
type Process struct {
	path  string
	cmd   *exec.Cmd
	out   *Output
	tree  Tree           // nil: the process group is all there is
	hsR   *io.PipeReader // what go-plugin reads: the handshake line only
	hsW   *io.PipeWriter
	stdio io.ReadCloser // go-plugin's "stderr": empty, we relay stderr ourselves

	stdoutR, stderrR *os.File
	liveW            *os.File

	pid    int
	exited chan struct{}
	relays sync.WaitGroup

	mu        sync.Mutex
	reaped    bool
	killed    bool // KillGroup sent SIGKILL before the leader exited
	exit      Exit
	firstLine string // first stdout line, for diagnostics
	sawLine   bool
}

// New prepares (does not start) the plugin at path. env is its whole
// environment (the caller builds it clean; go-plugin's handshake variables
// included); tree, if not nil, contains its descendants.
func New(path string, env []string, out *Output, tree Tree) *Process {
	cmd := exec.Command(path)
	cmd.Env = append(slices.Clip(env), wire.EnvLivenessFD+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	hsR, hsW := io.Pipe()
	return &Process{path: path, cmd: cmd, out: out, tree: tree, hsR: hsR, hsW: hsW,
		stdio: io.NopCloser(strings.NewReader("")), exited: make(chan struct{})}
}

// Start starts the process and the goroutines that watch it. The watch
// exists before the child runs user code (it is set up right after fork,
// and it only uses waitid on a pid nobody else may reap).
func (p *Process) Start(context.Context) error {
	if err := closeOnExec(); err != nil {
		return err
	}
	liveR, liveW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("liveness pipe: %w", err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		closeAll(liveR, liveW)
		return fmt.Errorf("stdout pipe: %w", err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		closeAll(liveR, liveW, stdoutR, stdoutW)
		return fmt.Errorf("stderr pipe: %w", err)
	}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.ExtraFiles = stdoutW, stderrW, []*os.File{liveR}
	if p.tree != nil {
		err = p.tree.Start(p.cmd)
	} else {
		err = p.cmd.Start()
	}
	closeAll(liveR, stdoutW, stderrW) // the child has its copies
	if err != nil {
		closeAll(liveW, stdoutR, stderrR)
		_ = p.hsW.CloseWithError(err)
		if p.tree != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = p.tree.Remove(ctx)
			cancel()
		}
		return err
	}
	p.mu.Lock()
	p.pid, p.liveW, p.stdoutR, p.stderrR = p.cmd.Process.Pid, liveW, stdoutR, stderrR
	p.mu.Unlock()
	p.out.SetPid(p.pid)
	p.relays.Add(2)
	go p.relay(stdoutR, p.out.Writer("stdout"), true)
	go p.relay(stderrR, p.out.Writer("stderr"), false)
	go func() { p.relays.Wait(); p.out.Close() }()
	go p.reap() //nolint:gosec // G118: the reaper outlives Start's context by design: it ends with the process
	return nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// treeKillTimeout bounds killing a module's tree; treeRemoveTimeout bounds
// waiting for it to empty once killed.
const (
	treeKillTimeout   = time.Second
	treeRemoveTimeout = 5 * time.Second
)

// reap learns of the leader's exit without reaping it, kills the rest of its
// group (while the group id is still reserved) and its tree, notes which
// limit the kernel enforced, reaps, and waits for the tree to empty.
func (p *Process) reap() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	// The tree first: an Adopter recognises a descendant by its
	// environment, which a process killed by the group kill loses.
	p.killTree()
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // grandchildren; the leader is a zombie
	p.reaped = true
	p.mu.Unlock()
	limit, oom := p.limitHit()
	st, err := p.cmd.Process.Wait()
	ex := Exit{Code: -1, Limit: limit, OverMemory: oom}
	if err == nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ex.Signal = ws.Signal()
		} else {
			ex.Code = st.ExitCode()
		}
	}
	p.mu.Lock()
	ex.ByHost = p.killed && ex.Signal == syscall.SIGKILL
	p.exit = ex
	p.mu.Unlock()
	if p.tree != nil {
		ctx, cancel := context.WithTimeout(context.Background(), treeRemoveTimeout)
		if err := p.tree.Remove(ctx); err != nil {
			p.out.Warn("processes of the plugin outlive it", "err", err)
		}
		cancel()
	}
	_ = p.liveW.Close()
	close(p.exited)
}

// killTree kills the module's tree, bounded.
func (p *Process) killTree() {
	if p.tree == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), treeKillTimeout)
	defer cancel()
	if err := p.tree.Kill(ctx); err != nil {
		p.out.Warn("cannot kill the plugin's process tree", "err", err)
	}
}

// KillGroup sends SIGKILL to the plugin's whole process group, unless the
// leader has already been reaped (then its ids may belong to someone else,
// and the group was killed at its exit anyway), and to its tree.
func (p *Process) KillGroup() {
	p.mu.Lock()
	live := p.pid > 0 && !p.reaped
	if live {
		p.killed = true // before the tree kill, which may kill the leader too
	}
	p.mu.Unlock()
	if !live {
		return
	}
	p.killTree() // first, as in reap
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// CloseOutput closes the read ends of stdout and stderr, so relays stop even
// if a process that escaped the group still holds the write ends.
func (p *Process) CloseOutput() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdoutR != nil {
		_ = p.stdoutR.Close()
		_ = p.stderrR.Close()
	}
	_ = p.hsW.Close()
}

// WaitRelays waits for the output relays to finish, or ctx.
func (p *Process) WaitRelays(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.relays.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Exit is how the process ended; valid once Exited is closed.
func (p *Process) Exit() Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Pid is the plugin's pid (and process group id), 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// FirstLine is the first line the plugin wrote on stdout (the handshake
// line, or what a non-plugin printed instead), and whether there was one.
func (p *Process) FirstLine() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstLine, p.sawLine
}

// The runner.Runner interface, for go-plugin.

// Diagnose is called by go-plugin when the handshake line is unreadable;
// graft builds its own diagnosis, so this stays short.
func (p *Process) Diagnose(context.Context) string { return "" }

// Stdout gives go-plugin the handshake line, then EOF.
func (p *Process) Stdout() io.ReadCloser { return p.hsR }

// Stderr gives go-plugin nothing: graft relays stderr itself.
func (p *Process) Stderr() io.ReadCloser { return p.stdio }

// Name is the binary path.
func (p *Process) Name() string { return p.path }

// ID is the pid.
func (p *Process) ID() string { return strconv.Itoa(p.Pid()) }

// Wait waits for the exit (go-plugin calls it from its own goroutine).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	if ex := p.Exit(); ex.Code != 0 {
		return errors.New(ex.String())
	}
	return nil
}

// Kill kills the process group (go-plugin calls it when a graceful
// shutdown did not work, or when its start failed).
func (p *Process) Kill(context.Context) error {
	p.KillGroup()
	return nil
}

// PluginToHost is the identity: the plugin runs on this host.
func (p *Process) PluginToHost(n, a string) (string, string, error) { return n, a, nil }

// HostToPlugin is the identity: the plugin runs on this host.
func (p *Process) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }
