package dynamic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// Info is what the plugin reported at start.
func (m *Instance) Info() Info { return m.info }

// Pid is the plugin process id (also its process group id).
func (m *Instance) Pid() int { return m.proc.Pid() }

// Exited is closed when the module has ended for any reason (Stop, crash,
// hang) and is fully cleaned up: process reaped, its group killed, sockets
// removed. A supervisor selects on it; Err says why.
func (m *Instance) Exited() <-chan struct{} { return m.torndown }

// Err is nil while the module runs; afterwards ErrStopped after Stop, or a
// *CrashError (matching ErrCrashed) with the exit status and, if graft
// killed it, the reason.
func (m *Instance) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deadErr
}

// ExitStatus is how the process ended; ok is false while it runs.
func (m *Instance) ExitStatus() (ex Exit, ok bool) {
	select {
	case <-m.proc.Exited():
		return m.proc.Exit(), true
	default:
		return Exit{}, false
	}
}

// markDead records why calls fail from now on (the first reason wins) and
// fails every pending batch.
func (m *Instance) markDead(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deadErr != nil {
		return
	}
	m.deadErr = err
	close(m.dead)
	m.pending = nil
}

func (m *Instance) forget(id uint64) {
	m.mu.Lock()
	delete(m.pending, id)
	m.mu.Unlock()
}

// supervise turns the process's exit into the module's end and cleans up.
func (m *Instance) supervise() {
	defer close(m.torndown)
	<-m.proc.Exited()
	ex := m.proc.Exit()
	if m.stopping.Load() {
		m.markDead(ErrStopped)
	} else {
		ce := &CrashError{Behaviour: m.info.Behaviour, Version: m.info.CodeVersion, Pid: m.proc.Pid(), Exit: ex}
		if r := m.killReason.Load(); r != nil {
			ce.Reason = "killed by graft: " + *r
		}
		m.markDead(ce)
		m.log.Error("plugin exited unexpectedly", "exit", ex.String(), "reason", ce.Reason)
	}
	// Let the relays log the plugin's last words (a panic trace), briefly:
	// the group is dead, so EOF comes at once unless something escaped it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_ = m.proc.WaitRelays(ctx)
	cancel()
	m.proc.CloseOutput()
	_ = m.proc.WaitRelays(context.Background())
	m.cancel()
	m.killClient()
	if err := os.RemoveAll(m.dir); err != nil {
		m.log.Warn("cannot remove socket directory", "dir", m.dir, "err", err)
	}
	m.teardownWG.Wait()
	m.log.Debug("plugin module torn down", "exit", ex.String())
}

// Stop ends the module: graceful first (go-plugin's shutdown RPC), then, at
// the deadline less a margin, SIGKILL of the plugin's whole process group.
// It returns by ctx's deadline (cfg.StopTimeout if ctx has none) whatever
// the plugin does (SIGSTOPped, a grandchild holding its output...). Pending
// batches fail with ErrStopped. Stopping an ended module returns nil.
func (m *Instance) Stop(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(m.cfg.StopTimeout)
	}
	select {
	case <-m.torndown:
		return nil
	default:
	}
	m.stopping.Store(true)
	m.markDead(ErrStopped)
	m.cancel()
	go m.killClient() // graceful: shutdown RPC, close connection

	left := time.Until(deadline)
	margin := min(250*time.Millisecond, left/4)
	grace := time.NewTimer(left - margin)
	defer grace.Stop()
	select {
	case <-m.proc.Exited():
	case <-grace.C:
		m.log.Warn("plugin did not stop in time; killing its process group", "after", (left - margin).String())
		m.proc.KillGroup()
	case <-ctx.Done():
		m.proc.KillGroup()
	}
	final := time.NewTimer(time.Until(deadline))
	defer final.Stop()
	select {
	case <-m.torndown:
		return nil
	case <-final.C:
		m.proc.KillGroup()
		m.proc.CloseOutput()
		return fmt.Errorf("graft: stop plugin %s %s (pid %d): cleanup not finished by the deadline (process killed)",
			m.info.Behaviour, m.info.CodeVersion, m.proc.Pid())
	}
}

// callCtx bounds a unary call by the handle timeout when ctx has no deadline.
func (m *Instance) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, m.cfg.HandleTimeout)
}

// rpcErr explains a failed unary call: the module's end if it ended,
// otherwise the plugin's message.
func (m *Instance) rpcErr(op string, err error) error {
	if de := m.Err(); de != nil {
		return fmt.Errorf("graft: plugin %s %s: %s: %w", m.info.Behaviour, m.info.CodeVersion, op, de)
	}
	st := status.Convert(err)
	if st.Code() == codes.FailedPrecondition {
		return fmt.Errorf("graft: plugin %s %s: %s: %s: %w", m.info.Behaviour, m.info.CodeVersion, op, st.Message(), ErrNoMigration)
	}
	return fmt.Errorf("graft: plugin %s %s: %s: %s", m.info.Behaviour, m.info.CodeVersion, op, st.Message())
}

// Init asks the plugin for the fresh state of actor, at the plugin's
// schema version.
func (m *Instance) Init(ctx context.Context, actor string) (State, error) {
	ctx, cancel := m.callCtx(ctx)
	defer cancel()
	resp, err := m.conn.Behaviour.Init(ctx, &graftv1.InitRequest{Actor: actor})
	if err != nil {
		return State{}, m.rpcErr(fmt.Sprintf("init %q", actor), err)
	}
	return State{Schema: resp.GetState().GetSchema(), Data: resp.GetState().GetData()}, nil
}

// Migrate converts st to schema `to` with the plugin's code (up, or down
// for rollback). A migration the plugin does not declare fails with
// ErrNoMigration before any call.
func (m *Instance) Migrate(ctx context.Context, actor string, st State, to uint32) (State, error) {
	if !m.info.CanMigrate(st.Schema, to) {
		return State{}, fmt.Errorf("graft: plugin %s %s (schema %d) cannot migrate state of %q from schema %d to %d (it migrates up from %v, down to %v): %w",
			m.info.Behaviour, m.info.CodeVersion, m.info.SchemaVersion, actor, st.Schema, to, m.info.MigratesFrom, m.info.MigratesTo, ErrNoMigration)
	}
	ctx, cancel := m.callCtx(ctx)
	defer cancel()
	resp, err := m.conn.Behaviour.Migrate(ctx, &graftv1.MigrateRequest{Actor: actor, State: &graftv1.State{Schema: st.Schema, Data: st.Data}, ToSchema: to})
	if err != nil {
		return State{}, m.rpcErr(fmt.Sprintf("migrate %q from schema %d to %d", actor, st.Schema, to), err)
	}
	return State{Schema: resp.GetState().GetSchema(), Data: resp.GetState().GetData()}, nil
}

// Health asks the plugin whether it can serve.
func (m *Instance) Health(ctx context.Context) error {
	ctx, cancel := m.callCtx(ctx)
	defer cancel()
	resp, err := m.conn.Behaviour.Health(ctx, &graftv1.HealthRequest{})
	if err != nil {
		return m.rpcErr("health", err)
	}
	if !resp.Serving {
		return fmt.Errorf("graft: plugin %s %s: not serving: %s", m.info.Behaviour, m.info.CodeVersion, resp.Detail)
	}
	return nil
}

var errStreamBroken = errors.New("handle stream broken")
