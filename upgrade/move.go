package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// transition carries out op (an upgrade, a rollback, or one of those
// resumed after a restart): load the target module, check it can take every
// actor's state, journal the op, move the actors group by group, then make
// the target current. down says the migration is done by the module being
// left (a rollback) rather than the one being loaded.
func (m *Manager) transition(ctx context.Context, behaviour string, op *Op, down bool) (mailbox.UpgradeRecord, error) {
	c := m.core
	rec := mailbox.UpgradeRecord{Behaviour: behaviour, Kind: op.Kind, Started: time.Now().UTC(), From: op.From.Name()}
	fail := func(err error) (mailbox.UpgradeRecord, error) {
		rec.Ended, rec.Outcome, rec.Error = time.Now().UTC(), "failed", err.Error()
		if op.resumed {
			rec.Outcome = "abandoned after a core restart"
		}
		rec.To = op.To.Name()
		return m.record(ctx, rec), fmt.Errorf("%s of %q to %s: %w", op.Kind, behaviour, op.To.Name(), err)
	}

	// unload stops the target module when no actor ended up on it.
	unload := func() {
		if _, err := c.UnloadModule(context.WithoutCancel(ctx), behaviour, op.To.Path); err != nil {
			m.log.Warn("could not stop the unused module", "behaviour", behaviour, "err", err)
		}
	}

	t0 := time.Now()
	target, from, migrator, err := m.loadModules(ctx, behaviour, op, down)
	if err != nil {
		return fail(err)
	}
	rec.To, rec.From = op.To.Name(), op.From.Name()
	m.setRunning(behaviour, *op)
	rec.Steps = append(rec.Steps, mailbox.UpgradeStep{Step: "load", Duration: time.Since(t0)})

	actors, states, err := m.readStates(ctx, behaviour, migrator, op.To)
	if err == nil {
		err = m.journalBegin(behaviour, op)
	}
	if err != nil {
		unload()
		return fail(err)
	}
	m.failpoint("journaled")
	m.log.Info(op.Kind+" began", "behaviour", behaviour, "from", op.From.Name(), "to", op.To.Name(), "actors", len(actors))

	var todo []string
	for _, a := range actors {
		if !op.To.holds(states[a]) {
			todo = append(todo, a)
		}
	}
	moved, steps, moveErr := m.move(ctx, target, migrator, op.To, todo)
	rec.Steps = append(rec.Steps, steps...)

	if moveErr == nil {
		// History first: a crash before the journal says "done" resumes the
		// op, finds every actor moved, and records it again; never the
		// other way round (a completed upgrade missing from the history).
		rec.Ended, rec.Outcome = time.Now().UTC(), "completed"
		if op.resumed {
			rec.Outcome = "completed after a core restart"
		}
		rec = m.record(ctx, rec)
	}
	m.mu.Lock()
	bs := m.j.Behaviours[behaviour]
	bs.InProgress = nil
	if moveErr == nil {
		bs.completed(op)
	} else if moved == 0 && len(todo) == len(actors) {
		bs.Live = slices.DeleteFunc(bs.Live, func(v Version) bool { return v.SHA == op.To.SHA })
	}
	err = m.j.save()
	m.mu.Unlock()
	if moveErr != nil {
		if moved == 0 {
			unload()
			return fail(fmt.Errorf("no actor moved, all stay on %s: %w", op.From.Name(), moveErr))
		}
		if m.opts.RollbackOnFailure && from != nil && !down {
			done, err := m.moveBack(ctx, behaviour, op, from, migrator, todo[:moved], len(todo) == len(actors), &rec, moveErr, unload)
			if done {
				return rec, err
			}
			moveErr = errors.Join(moveErr, err)
		}
		return fail(fmt.Errorf("%d of %d actors moved and stay consistent on %s, the rest stay on %s: %w", moved, len(todo), op.To.Name(), op.From.Name(), moveErr))
	}
	if err != nil {
		return fail(err)
	}
	m.failpoint("done")
	if _, err := c.UnloadModule(context.WithoutCancel(ctx), behaviour, op.From.Path); err != nil {
		m.log.Warn("could not stop the old module", "behaviour", behaviour, "err", err)
	}
	return rec, nil
}

// moveBack moves the actors a failed upgrade moved back to the old version
// (Options.RollbackOnFailure). Done, it has recorded rec and err is the
// upgrade's error; otherwise err says why moving back failed. noneBefore
// says no actor was on the target before the upgrade began, so the target
// stops being live and is stopped.
func (m *Manager) moveBack(ctx context.Context, behaviour string, op *Op, from *core.ModuleHandle, migrator *dynamic.Module,
	moved []string, noneBefore bool, rec *mailbox.UpgradeRecord, moveErr error, unload func()) (done bool, err error) {
	back, backSteps, backErr := m.move(ctx, from, migrator, op.From, moved)
	rec.Steps = append(rec.Steps, backSteps...)
	if backErr != nil {
		return false, fmt.Errorf("moving the moved actors back failed after %d: %w", back, backErr)
	}
	// History first: its synced write makes the lazy move-back commits
	// durable before the journal stops naming To.
	rec.Ended, rec.Outcome, rec.Error = time.Now().UTC(), "rolled back", moveErr.Error()
	*rec = m.record(ctx, *rec)
	if noneBefore {
		m.mu.Lock()
		m.j.Behaviours[behaviour].Live = []Version{op.From}
		if err := m.j.save(); err != nil {
			m.log.Error("could not update the upgrade journal", "behaviour", behaviour, "err", err)
		}
		m.mu.Unlock()
		unload()
	}
	return true, fmt.Errorf("%s of %q failed and the %d moved actors were moved back: %w", op.Kind, behaviour, back, moveErr)
}

// loadModules starts (or finds) op's target module and its source one,
// filling in their code and schema versions, and returns the module that
// migrates the state: the target's, or for a rollback (down) the newer
// module being left, which knows the way down. A target that loads but
// does not answer is stopped again.
func (m *Manager) loadModules(ctx context.Context, behaviour string, op *Op, down bool) (target, from *core.ModuleHandle, migrator *dynamic.Module, err error) {
	c := m.core
	target, err = c.LoadModule(ctx, behaviour, op.To.Path, op.To.SHA)
	if err != nil {
		return nil, nil, nil, err
	}
	migrator, err = target.Module(ctx)
	if err != nil {
		if _, uerr := c.UnloadModule(context.WithoutCancel(ctx), behaviour, op.To.Path); uerr != nil {
			m.log.Warn("could not stop the unused module", "behaviour", behaviour, "err", uerr)
		}
		return nil, nil, nil, err
	}
	info := migrator.Info()
	op.To.Code, op.To.Schema = info.CodeVersion, info.SchemaVersion
	from, err = c.LoadModule(ctx, behaviour, op.From.Path, op.From.SHA)
	if err != nil {
		return target, nil, migrator, nil // the old module is gone: only a move back would need it
	}
	if fm, err := from.Module(ctx); err == nil {
		op.From.Code, op.From.Schema = fm.Info().CodeVersion, fm.Info().SchemaVersion
		m.learn(behaviour, op.From)
		if down {
			migrator = fm
		}
	}
	return target, from, migrator, nil
}

// readStates reads the committed state of every actor of behaviour and
// checks that migrator can take each to the target's schema.
func (m *Manager) readStates(ctx context.Context, behaviour string, migrator *dynamic.Module, to Version) ([]string, map[string]mailbox.State, error) {
	actors := m.core.ActorsOf(behaviour)
	states := make(map[string]mailbox.State, len(actors))
	for _, a := range actors {
		st, err := m.core.Store().State(ctx, a)
		if err != nil {
			return nil, nil, err
		}
		states[a] = st
		if mi := migrator.Info(); st.Data != nil && st.Schema != to.Schema && !mi.CanMigrate(st.Schema, to.Schema) {
			return nil, nil, fmt.Errorf("%w: actor %q holds schema %d and module %s cannot migrate it to schema %d (it migrates up from %v and down to %v)",
				ErrCannotMigrate, a, st.Schema, mi.CodeVersion, to.Schema, mi.MigratesFrom, mi.MigratesTo)
		}
	}
	return actors, states, nil
}

// journalBegin records op as in progress, with its target live, before
// the first actor is paused.
func (m *Manager) journalBegin(behaviour string, op *Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	bs.InProgress = op
	if !slices.ContainsFunc(bs.Live, func(v Version) bool { return v.SHA == op.To.SHA }) {
		bs.Live = append(bs.Live, op.To)
	}
	return m.j.save()
}

// move pauses, migrates, commits and resumes the actors in groups of
// GroupSize: each group's migrated states commit in one store transaction.
// A failure before a group's commit resumes that group on its old module
// with its state untouched and stops. It returns how many actors moved and
// each one's pause.
func (m *Manager) move(ctx context.Context, target *core.ModuleHandle, migrator *dynamic.Module, to Version, actors []string) (int, []mailbox.UpgradeStep, error) {
	moved := 0
	var steps []mailbox.UpgradeStep
	for start := 0; start < len(actors); start += m.opts.GroupSize {
		group := actors[start:min(start+m.opts.GroupSize, len(actors))]
		paused, err := m.pauseAll(ctx, group)
		if err != nil {
			return moved, steps, err
		}
		m.failpoint("paused")
		next, err := m.migrateAll(ctx, migrator, to, group, paused)
		if err != nil {
			resumeAll(paused, nil, nil)
			return moved, steps, err
		}
		m.failpoint("migrated")
		var commits []mailbox.Commit
		for i, p := range paused {
			if next[i] != nil {
				// Lazy: the actor's next batch commit or the history record
				// makes it durable; lost before that, the actor is simply
				// still on the old version and a restart moves it again.
				commits = append(commits, mailbox.Commit{Actor: group[i], Epoch: p.Epoch, State: next[i], Lazy: true})
			}
		}
		if err := m.core.Store().Commit(ctx, commits...); err != nil {
			resumeAll(paused, nil, nil)
			return moved, steps, fmt.Errorf("commit migrated states: %w", err)
		}
		m.failpoint("committed")
		resumeAll(paused, target, next)
		for i, p := range paused {
			steps = append(steps, mailbox.UpgradeStep{Actor: group[i], Step: "pause", Duration: time.Since(p.Since)})
		}
		moved += len(group)
	}
	return moved, steps, nil
}

// pauseAll pauses a group concurrently, each bounded by DrainTimeout; on
// any failure the ones paused are resumed.
func (m *Manager) pauseAll(ctx context.Context, group []string) ([]*core.Paused, error) {
	paused := make([]*core.Paused, len(group))
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for i, a := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, m.opts.DrainTimeout)
			defer cancel()
			paused[i], errs[i] = m.core.Pause(pctx, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range paused {
			if p != nil {
				p.Resume(nil, nil)
			}
		}
		return nil, err
	}
	return paused, nil
}

// migrateAll computes each paused actor's state at version to. A state
// never committed (nil) stays so: the target's Init makes it.
func (m *Manager) migrateAll(ctx context.Context, migrator *dynamic.Module, to Version, group []string, paused []*core.Paused) ([]*mailbox.State, error) {
	next := make([]*mailbox.State, len(paused))
	errs := make([]error, len(paused))
	var wg sync.WaitGroup
	for i, p := range paused {
		st := p.State
		if st.Data == nil && st.Module == "" {
			continue
		}
		if st.Schema == to.Schema {
			next[i] = &mailbox.State{Schema: st.Schema, Module: to.Code, Data: st.Data}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mctx, cancel := context.WithTimeout(ctx, m.opts.MigrateTimeout)
			defer cancel()
			out, err := migrator.Migrate(mctx, group[i], dynamic.State{Schema: st.Schema, Data: st.Data}, to.Schema)
			if err != nil {
				errs[i] = fmt.Errorf("migrate state of actor %q from schema %d to %d: %w", group[i], st.Schema, to.Schema, err)
				return
			}
			next[i] = &mailbox.State{Schema: out.Schema, Module: to.Code, Data: out.Data}
		}()
	}
	wg.Wait()
	return next, errors.Join(errs...)
}

// resumeAll resumes a group, on target with the new states (or, with nil
// target, where it was).
func resumeAll(paused []*core.Paused, target *core.ModuleHandle, states []*mailbox.State) {
	for i, p := range paused {
		var st *mailbox.State
		if states != nil {
			st = states[i]
		}
		p.Resume(target, st)
	}
}
