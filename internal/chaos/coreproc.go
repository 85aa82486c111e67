package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/graft-host/graft/core/control"
)

// coreProc is one incarnation of the `graft run` child process.
type coreProc struct {
	cmd  *exec.Cmd
	info procInfo
	done chan struct{} // closed once the process is reaped
	err  error         // its exit status, valid after done
}

// gate lets the load wait for a core that answers instead of hammering a
// dead socket: it is open while a core is known to be up.
type gate struct {
	mu sync.Mutex
	up chan struct{}
}

func newGate() *gate { return &gate{up: make(chan struct{})} }

// wait blocks until the gate is open or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	up := g.up
	g.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
	default:
		close(g.up)
	}
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
		g.up = make(chan struct{})
	default:
	}
}

// coreStartTimeout bounds a (re)start of the core until all its actors run.
const coreStartTimeout = 90 * time.Second

// startCore runs `graft run` and waits until every actor runs. The core's
// logs go to core.log in the run's folder, kept on failure.
func (r *Runner) startCore(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(r.dir, "core.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open core log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(r.graftBin, "run", "--config", r.configPath, "--log-level", "warn", "--grace", "20s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s run: %w", r.graftBin, err)
	}
	p := &coreProc{cmd: cmd, done: make(chan struct{})}
	p.info, _ = readProc(cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.core = p
	r.mu.Unlock()
	r.stats.coreStarts.Add(1)
	return r.waitRunning(ctx, p)
}

// waitRunning polls the status until every configured actor runs on a
// live module, or is passive (ctm's idle actors start passive; their next
// message wakes them), those made at run time starting in the
// background.
func (r *Runner) waitRunning(ctx context.Context, p *coreProc) error {
	ctx, cancel := context.WithTimeout(ctx, coreStartTimeout)
	defer cancel()
	var last string
	for {
		select {
		case <-p.done:
			return fmt.Errorf("the core exited while starting (%w); see %s", p.err, filepath.Join(r.dir, "core.log"))
		default:
		}
		st, err := r.statusWithin(ctx, 2*time.Second)
		if err == nil {
			running := 0
			for _, a := range st.Actors {
				up := (a.Status == "running" && a.PID != 0) || a.Status == "passive"
				if up && slices.Contains(r.actors, a.Name) {
					running++
				}
			}
			if running == len(r.actors) {
				r.gate.open()
				return nil
			}
			last = fmt.Sprintf("%d of %d actors running", running, len(r.actors))
		} else {
			last = err.Error()
		}
		if err := waitTick(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("the core did not get all actors running within %s (last: %s): %w", coreStartTimeout, last, err)
		}
	}
}

// statusWithin asks the core for its status with a short deadline.
func (r *Runner) statusWithin(ctx context.Context, d time.Duration) (control.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return r.client.Status(ctx)
}

// currentCore is the running incarnation (nil between a kill and a start).
func (r *Runner) currentCore() *coreProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.core
}

// killCore kill -9s the core, reaps it, and checks that its plugins die
// with it (G6: within a second; the harness allows orphanGrace).
func (r *Runner) killCore(ctx context.Context) error {
	p := r.currentCore()
	r.gate.shut()
	killed := time.Now().UnixNano()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill -9 the core: %w", err)
	}
	<-p.done
	r.mu.Lock()
	r.core = nil
	r.mu.Unlock()
	r.stats.coreKills.Add(1)
	r.hist.AddKill(killed)
	r.reapOrphans(ctx, "after kill -9 of the core")
	return nil
}

// orphanGrace is how long plugins may outlive a dead core before the
// harness counts them as leaked (the brief promises one second).
const orphanGrace = 3 * time.Second

// reapOrphans waits for every plugin of this run to exit; survivors are
// recorded as leaks and killed so the run can go on.
func (r *Runner) reapOrphans(ctx context.Context, when string) {
	deadline := time.Now().Add(orphanGrace)
	for {
		left := processesUnder(r.dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				r.leak("process %d (%s) still running %s after %s %s", p.pid, p.exe, orphanGrace, when, "")
				_ = p.signal(syscall.SIGKILL)
			}
			return
		}
		if waitTick(ctx, 10*time.Millisecond) != nil {
			return
		}
	}
}

// stopCore stops the core gracefully (SIGTERM) and waits for it.
func (r *Runner) stopCore(ctx context.Context) error {
	p := r.currentCore()
	r.gate.shut()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop the core: %w", err)
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("the core did not stop within 60s of SIGTERM (killed); see %s", filepath.Join(r.dir, "core.log"))
	case <-ctx.Done():
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return ctx.Err()
	}
	r.mu.Lock()
	r.core = nil
	r.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("the core exited with %w after SIGTERM; see %s", p.err, filepath.Join(r.dir, "core.log"))
	}
	return nil
}

// waitTick waits d, or less if ctx ends; polling loops use it between
// looks at a condition that has its own deadline.
func waitTick(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
