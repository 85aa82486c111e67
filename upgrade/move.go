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

// move pauses, migrates, commits and resumes the actors in groups of
// GroupSize: each group's migrated states commit in one store transaction.
// A failure before a group's commit resumes that group on its old module
// with its state untouched and stops. An actor that would pause longer
// than MaxPause is resumed where it was and retried once the others moved
// (budget.go). It returns the actors moved (not always a prefix of
// actors: one over budget moves later, or not) and each one's pause.
// With durable, the last group's commit is synced (so every group's is,
// the log being sequential): what moved is on disk before the caller
// journals a step that counts on it (a canary's bake).
//
// Groups were measured against moving every actor on its own, GroupSize
// at once (docs/BENCHMARKS.md): on 2 cores under load the per-actor
// commits cost more than a group's wait for its slowest drain saves.
//
// progress, if not nil, is told how many actors each group moved.
func (m *Manager) move(ctx context.Context, target *core.LoadedModule, migrator *dynamic.Instance, to Version, actors []string, durable bool, progress func(int)) ([]string, []mailbox.UpgradeStep, error) {
	var steps []mailbox.UpgradeStep
	var over []overBudget
	for start := 0; start < len(actors); start += m.opts.GroupSize {
		end := min(start+m.opts.GroupSize, len(actors))
		gctx, span := m.startGroup(ctx, start/m.opts.GroupSize, end-start) // tracing.go
		pauses, late, err := m.moveGroup(gctx, target, migrator, to, actors[start:end], durable && end == len(actors), start == 0)
		endGroup(span, len(pauses), len(late), err)
		steps, over = append(steps, pauses...), append(over, late...)
		if progress != nil {
			progress(len(pauses))
		}
		if err != nil {
			return movedActors(steps), steps, err
		}
		if len(late) > 0 && m.opts.StopOverBudget {
			return movedActors(steps), steps, m.overBudgetError(over, len(movedActors(steps)), len(actors), 0)
		}
	}
	if len(over) == 0 {
		return movedActors(steps), steps, nil
	}
	retrySteps, err := m.retryOverBudget(ctx, target, migrator, to, over, durable, len(movedActors(steps)), len(actors))
	steps = append(steps, retrySteps...)
	return movedActors(steps), steps, err
}

// movedActors are the actors that steps record a pause of, in order, each
// once.
func movedActors(steps []mailbox.UpgradeStep) []string {
	var out []string
	for _, s := range steps {
		if s.Step == string(StepPause) && s.Actor != "" && !slices.Contains(out, s.Actor) {
			out = append(out, s.Actor)
		}
	}
	return out
}

// moveGroup moves one group: pause all, migrate each committed state,
// commit the group's states and module versions in one transaction, then
// resume each on target. Before the commit a failure resumes the group
// where it was, state untouched. An actor whose drain or migration does
// not fit MaxPause is resumed where it was instead and returned in over.
// It returns each moved actor's pause.
func (m *Manager) moveGroup(ctx context.Context, target *core.LoadedModule, migrator *dynamic.Instance, to Version, group []string, durable, first bool) (_ []mailbox.UpgradeStep, over []overBudget, _ error) {
	var warm *dynamic.Instance
	if first {
		warm, _ = target.Module(ctx) // nil on an error, which the resume meets and reports
	}
	pre := m.premigrate(ctx, migrator, warm, to, group)
	defer pre.close()
	paused, over, err := m.pauseAll(ctx, group, func(a string) func(mailbox.State) { return pre.ahead(m, migrator, to, a) })
	if err != nil {
		return nil, nil, err
	}
	group, paused = pausedOnly(group, paused)
	if len(paused) == 0 {
		return nil, over, nil
	}
	m.failpoint(FailpointPaused)
	next, late, err := m.migrateAll(ctx, migrator, to, group, paused, pre)
	if err != nil {
		resumeAll(paused, nil, nil)
		return nil, nil, err
	}
	over = append(over, late...)
	m.failpoint(FailpointMigrated)
	var commits []mailbox.Commit
	var moving []int
	for i, p := range paused {
		if next[i] == errOverBudget {
			paused[i] = nil // resumed by migrateAll
			continue
		}
		if m.overBudgetAt(p) { // would pause too long: stays where it was
			over = append(over, overBudget{actor: group[i], stage: "migration", took: time.Since(p.Since)})
			p.Resume(nil, nil)
			paused[i] = nil
			continue
		}
		moving = append(moving, i)
		if next[i] != nil {
			// Lazy: the actor's next batch commit or the history record
			// makes it durable; lost before that, the actor is simply
			// still on the old version and a restart moves it again.
			commits = append(commits, mailbox.Commit{Actor: group[i], Epoch: p.Epoch, State: next[i], Lazy: !durable})
		}
	}
	if err := m.host.CommitStates(ctx, commits...); err != nil {
		resumeAll(paused, nil, nil)
		return nil, nil, fmt.Errorf("commit migrated states: %w", err)
	}
	m.failpoint(FailpointCommitted)
	steps := make([]mailbox.UpgradeStep, 0, len(moving))
	for _, i := range moving {
		paused[i].Resume(target, next[i])
		p := paused[i]
		steps = append(steps, mailbox.UpgradeStep{Actor: group[i], Step: string(StepPause), Duration: time.Since(p.Since), Drain: p.Drained.Sub(p.Since)})
	}
	return steps, over, nil
}

// pauseAll pauses a group concurrently, each bounded by DrainTimeout and
// the pause budget. An actor whose batch in flight outlasts the budget is
// not paused (it goes on serving) and is returned in over; on any other
// failure the ones paused are resumed and the error returned.
func (m *Manager) pauseAll(ctx context.Context, group []string, ahead func(actor string) func(mailbox.State)) ([]*core.Paused, []overBudget, error) {
	paused := make([]*core.Paused, len(group))
	errs := make([]error, len(group))
	late := make([]bool, len(group))
	started := time.Now()
	wait, budgeted := m.drainWait()
	var wg sync.WaitGroup
	for i, a := range group {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			paused[i], errs[i] = m.host.PauseAhead(pctx, a, ahead(a))
			if budgeted && errors.Is(errs[i], context.DeadlineExceeded) && ctx.Err() == nil {
				late[i], errs[i] = true, nil
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		resumeAll(paused, nil, nil)
		return nil, nil, err
	}
	var over []overBudget
	for i, l := range late {
		if l {
			over = append(over, overBudget{actor: group[i], stage: "drain", took: time.Since(started)})
		}
	}
	return paused, over, nil
}

// migrateAll computes each paused actor's state at version to. A state
// never committed (nil) stays so: the target's Init makes it. A migration
// cut short by the pause budget resumes its actor where it was, marks its
// state errOverBudget and returns it in over.
func (m *Manager) migrateAll(ctx context.Context, migrator *dynamic.Instance, to Version, group []string, paused []*core.Paused, pre *premigrations) ([]*mailbox.State, []overBudget, error) {
	next := make([]*mailbox.State, len(paused))
	errs := make([]error, len(paused))
	late := make([]bool, len(paused))
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
		wg.Go(func() {
			mctx, cancel, budgeted := m.migrateContext(ctx, p)
			defer cancel()
			if done := pre.reuse(mctx, group[i], st); done != nil {
				next[i] = done
				return
			}
			out, err := migrator.Migrate(mctx, group[i], dynamic.State{Schema: st.Schema, Data: st.Data}, to.Schema)
			switch {
			case err != nil && budgeted && errors.Is(mctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
				late[i] = true
			case err != nil:
				errs[i] = fmt.Errorf("migrate state of actor %q from schema %d to %d: %w", group[i], st.Schema, to.Schema, err)
			default:
				next[i] = &mailbox.State{Schema: out.Schema, Module: to.Code, Data: out.Data}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	var over []overBudget
	for i, l := range late {
		if l {
			over = append(over, overBudget{actor: group[i], stage: "migration", took: time.Since(paused[i].Since)})
			paused[i].Resume(nil, nil)
			next[i] = errOverBudget
		}
	}
	return next, over, nil
}

// resumeAll resumes a group, on target with the new states (or, with nil
// target, where it was).
func resumeAll(paused []*core.Paused, target *core.LoadedModule, states []*mailbox.State) {
	for i, p := range paused {
		if p == nil {
			continue
		}
		var st *mailbox.State
		if states != nil {
			st = states[i]
		}
		p.Resume(target, st)
	}
}
