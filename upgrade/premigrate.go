package upgrade

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// Migrating ahead. A group's pause used to be its slowest drain (the batch
// in flight: a Handle and a synced commit) followed by the migration of
// every state, in a module just started, whose first calls are several
// times slower than the next ones. Two things take the migration off the
// pause when they can:
//
//	before the pause      the committed states are migrated while the
//	                      actors still serve: an idle actor's state is
//	                      the same at its pause, and its migration done;
//	during the drain      the state that the batch in flight commits is
//	                      migrated as soon as its Handle returned it
//	                      (core.UpgradeHooks.PauseAhead), while the
//	                      commit syncs.
//
// A migration made ahead counts only if the state it started from is the
// one the actor holds once paused (same schema and bytes); otherwise (the
// actor handled another batch first, or the commit failed) the state is
// migrated again under the pause, as before. Errors made ahead are dropped
// for the same reason: the migration under the pause is the one that
// decides, and reports.

// premigration is one actor's state migrated ahead of its pause: from the
// state it started with, to the migrated one (nil on a failure), once
// done is closed.
type premigration struct {
	done chan struct{}
	from mailbox.State
	to   *mailbox.State
}

// premigrations are a group's migrations made ahead, by actor. They live
// as long as the group's move: close cancels those still running and
// waits for them, and a hint that comes later (a pause cut short whose
// batch then reached its commit) starts nothing.
type premigrations struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	by     map[string]*premigration
}

// start migrates st, actor's state, on a goroutine of its own, in place
// of what was migrated for it before; it returns at once. The migration
// is bounded as one under the pause would be (aheadTimeout).
func (p *premigrations) start(m *Manager, migrator *dynamic.Instance, to Version, actor string, st mailbox.State) *premigration {
	e := &premigration{done: make(chan struct{}), from: st}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		close(e.done) // nothing made: the pause migrates
		return e
	}
	p.by[actor] = e
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		defer close(e.done)
		mctx, cancel := context.WithTimeout(p.ctx, m.aheadTimeout())
		defer cancel()
		res, err := migrator.Migrate(mctx, actor, dynamic.State{Schema: st.Schema, Data: st.Data}, to.Schema)
		if err == nil {
			e.to = &mailbox.State{Schema: res.Schema, Module: to.Code, Data: res.Data}
		}
	}()
	return e
}

// aheadTimeout bounds a migration made ahead: the pause budget, as a
// migration slower than that would be over budget under the pause anyway
// (a hanging one must not hold the group up for MigrateTimeout first), or
// MigrateTimeout without a budget.
func (m *Manager) aheadTimeout() time.Duration {
	if b := m.opts.MaxPause; b > 0 && b < m.opts.MigrateTimeout {
		return b
	}
	return m.opts.MigrateTimeout
}

// premigrate migrates the committed states of a group's actors that need
// it, while they still serve, and waits for those migrations. With warm
// (the target module, for the first group only: a module is cold once),
// each actor's state at the target's schema is then sent to it as a batch
// of no messages (dynamic.Instance.Warm), so that the actors' first
// batches after the swap do not meet a cold module.
func (m *Manager) premigrate(ctx context.Context, migrator, warm *dynamic.Instance, to Version, group []string) *premigrations {
	p := &premigrations{by: make(map[string]*premigration, len(group))}
	p.ctx, p.cancel = context.WithCancel(ctx)
	var wg sync.WaitGroup
	// A few at a time: 64 migrations and warm-ups at once on a machine of
	// two cores would each take longer than their bound.
	slots := make(chan struct{}, 2*runtime.GOMAXPROCS(0))
	for _, a := range group {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			st, err := m.host.State(ctx, a)
			if err != nil || st.Data == nil {
				return
			}
			at := &st
			if st.Schema != to.Schema {
				e := p.start(m, migrator, to, a, st)
				<-e.done
				at = e.to
			}
			if warm != nil && at != nil {
				wctx, cancel := context.WithTimeout(ctx, m.aheadTimeout())
				defer cancel()
				if err := warm.Warm(wctx, a, dynamic.State{Schema: at.Schema, Data: at.Data}); err != nil {
					m.log.Debug("warming the new module failed; the move goes on", "actor", a, "err", err) // only a warm-up
				}
			}
		})
	}
	wg.Wait()
	return p
}

// ahead is the PauseAhead hint for actor: the state its batch in flight
// commits, migrated at once.
func (p *premigrations) ahead(m *Manager, migrator *dynamic.Instance, to Version, actor string) func(mailbox.State) {
	return func(st mailbox.State) {
		if st.Data != nil && st.Schema != to.Schema {
			p.start(m, migrator, to, actor, st)
		}
	}
}

// close ends the group's migrations made ahead: those still running (not
// reused) are cancelled and waited for, so none outlives the move, nor
// calls a module the op then stops.
func (p *premigrations) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// reuse waits (bounded by ctx) for the migration made ahead for actor and
// returns its result if it started from st, the actor's state at its
// pause; otherwise nil.
func (p *premigrations) reuse(ctx context.Context, actor string, st mailbox.State) *mailbox.State {
	p.mu.Lock()
	e := p.by[actor]
	p.mu.Unlock()
	if e == nil || e.from.Schema != st.Schema || !bytes.Equal(e.from.Data, st.Data) {
		return nil
	}
	select {
	case <-e.done:
		return e.to
	case <-ctx.Done():
		return nil
	}
}
