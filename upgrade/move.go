package upgrade

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// move pauses, migrates, commits and resumes the actors in groups of
// GroupSize: each group's migrated states commit in one store transaction.
// A failure before a group's commit resumes that group on its old module
// with its state untouched and stops. It returns how many actors moved and
// each one's pause. With durable, the last group's commit is synced (so
// every group's is, the log being sequential): what moved is on disk
// before the caller journals a step that counts on it (a canary's bake).
func (m *Manager) move(ctx context.Context, target *core.LoadedModule, migrator *dynamic.Instance, to Version, actors []string, durable bool) (int, []mailbox.UpgradeStep, error) {
	moved := 0
	var steps []mailbox.UpgradeStep
	for start := 0; start < len(actors); start += m.opts.GroupSize {
		end := min(start+m.opts.GroupSize, len(actors))
		pauses, err := m.moveGroup(ctx, target, migrator, to, actors[start:end], durable && end == len(actors))
		if err != nil {
			return moved, steps, err
		}
		steps = append(steps, pauses...)
		moved += len(pauses)
	}
	return moved, steps, nil
}

// moveGroup moves one group: pause all, migrate each committed state,
// commit the group's states and module versions in one transaction, then
// resume each on target. Before the commit a failure resumes the group
// where it was, state untouched. It returns each actor's pause.
func (m *Manager) moveGroup(ctx context.Context, target *core.LoadedModule, migrator *dynamic.Instance, to Version, group []string, durable bool) ([]mailbox.UpgradeStep, error) {
	paused, err := m.pauseAll(ctx, group)
	if err != nil {
		return nil, err
	}
	m.failpoint(FailpointPaused)
	next, err := m.migrateAll(ctx, migrator, to, group, paused)
	if err != nil {
		resumeAll(paused, nil, nil)
		return nil, err
	}
	m.failpoint(FailpointMigrated)
	var commits []mailbox.Commit
	for i, p := range paused {
		if next[i] != nil {
			// Lazy: the actor's next batch commit or the history record
			// makes it durable; lost before that, the actor is simply
			// still on the old version and a restart moves it again.
			commits = append(commits, mailbox.Commit{Actor: group[i], Epoch: p.Epoch, State: next[i], Lazy: !durable})
		}
	}
	if err := m.host.CommitStates(ctx, commits...); err != nil {
		resumeAll(paused, nil, nil)
		return nil, fmt.Errorf("commit migrated states: %w", err)
	}
	m.failpoint(FailpointCommitted)
	resumeAll(paused, target, next)
	steps := make([]mailbox.UpgradeStep, len(paused))
	for i, p := range paused {
		steps[i] = mailbox.UpgradeStep{Actor: group[i], Step: string(StepPause), Duration: time.Since(p.Since)}
	}
	return steps, nil
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
			paused[i], errs[i] = m.host.Pause(pctx, a)
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
func (m *Manager) migrateAll(ctx context.Context, migrator *dynamic.Instance, to Version, group []string, paused []*core.Paused) ([]*mailbox.State, error) {
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
func resumeAll(paused []*core.Paused, target *core.LoadedModule, states []*mailbox.State) {
	for i, p := range paused {
		var st *mailbox.State
		if states != nil {
			st = states[i]
		}
		p.Resume(target, st)
	}
}
