package upgrade

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// The pause budget (Options.MaxPause) bounds how long an upgrade may hold
// one actor between two commits: its drain (the batch in flight; at most
// half the budget, since a group waits for its slowest drain), its
// migration and its commit. An actor that would pause longer is resumed
// where it was, on the old version with its state untouched, so that a
// slow actor never stalls its callers for the sake of the upgrade:
//
//	pause ──drain──> migrate ──> commit ──> resume on the target
//	  │ budget spent   │ budget spent
//	  └────────────────┴──> resume where it was; over budget
//
// The actors over budget are retried one at a time once every other actor
// moved (a drain that met a long batch may meet an idle actor next time),
// up to budgetRetries times; those still over budget fail the op with
// ErrOverBudget, naming each. With Options.StopOverBudget the op stops at
// the first group that had one.

// DefaultMaxPause is Options.MaxPause unset: ten times a group's measured
// pause under load (docs/BENCHMARKS.md).
const DefaultMaxPause = 50 * time.Millisecond

// budgetRetries is how many more times an actor over budget is tried.
const budgetRetries = 3

// ErrOverBudget: some actors could not be moved within the pause budget
// and were left on the version they were on.
var ErrOverBudget = errors.New("actors would pause over the upgrade's pause budget")

// overBudget is one actor left where it was, by the stage that spent its
// budget and the time it had taken.
type overBudget struct {
	actor string
	stage string // drain or migration
	took  time.Duration
}

// errOverBudget marks, in migrateAll's states, an actor whose migration
// was cut short by the budget (and that is already resumed).
var errOverBudget = &mailbox.State{}

// drainWait is how long a pause may wait for the batch in flight, and
// whether the budget (rather than DrainTimeout) is that bound. It is half
// the budget: the actors of a group that paused at once wait for the
// group's slowest drain, and must still have time to migrate and commit.
func (m *Manager) drainWait() (time.Duration, bool) {
	if half := m.opts.MaxPause / 2; half > 0 && half < m.opts.DrainTimeout {
		return half, true
	}
	return m.opts.DrainTimeout, false
}

// migrateContext bounds p's migration by MigrateTimeout and what is left
// of its budget; budgeted says whether the budget is the nearer bound.
func (m *Manager) migrateContext(ctx context.Context, p *core.Paused) (context.Context, context.CancelFunc, bool) {
	limit := time.Now().Add(m.opts.MigrateTimeout)
	budgeted := false
	if b := m.opts.MaxPause; b > 0 {
		if end := p.Since.Add(b); end.Before(limit) {
			limit, budgeted = end, true
		}
	}
	mctx, cancel := context.WithDeadline(ctx, limit)
	return mctx, cancel, budgeted
}

// overBudgetAt says whether p has already been paused longer than the
// budget, before its commit.
func (m *Manager) overBudgetAt(p *core.Paused) bool {
	return m.opts.MaxPause > 0 && time.Since(p.Since) > m.opts.MaxPause
}

// pausedOnly is the actors of group that were paused, with their pauses.
func pausedOnly(group []string, paused []*core.Paused) ([]string, []*core.Paused) {
	var names []string
	var ps []*core.Paused
	for i, p := range paused {
		if p != nil {
			names = append(names, group[i])
			ps = append(ps, p)
		}
	}
	return names, ps
}

// retryOverBudget tries the actors over budget again, one at a time, up
// to budgetRetries rounds, and returns the pauses of those that moved.
// moved and total are the op's counts so far, for the error.
func (m *Manager) retryOverBudget(ctx context.Context, target *core.LoadedModule, migrator *dynamic.Instance, to Version, over []overBudget, durable bool, moved, total int) ([]mailbox.UpgradeStep, error) {
	var steps []mailbox.UpgradeStep
	for round := 1; round <= budgetRetries && len(over) > 0; round++ {
		m.log.Info("retrying actors over the pause budget", "actors", len(over), "round", round, "budget", m.opts.MaxPause)
		var still []overBudget
		for _, o := range over {
			pauses, late, err := m.moveGroup(ctx, target, migrator, to, []string{o.actor}, durable, false)
			steps = append(steps, pauses...)
			if err != nil {
				return steps, err
			}
			still = append(still, late...)
		}
		over = still
	}
	if len(over) > 0 {
		return steps, m.overBudgetError(over, moved+len(movedActors(steps)), total, budgetRetries)
	}
	return steps, nil
}

// overBudgetError names the actors left over budget and what to do.
func (m *Manager) overBudgetError(over []overBudget, moved, total, retries int) error {
	names := make([]string, 0, min(len(over), 10))
	for i, o := range over {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(over)-10))
			break
		}
		names = append(names, fmt.Sprintf("%s (%s over %s)", o.actor, o.stage, o.took.Round(time.Millisecond)))
	}
	how := "the upgrade stops at the first (upgrade.over_budget: stop)"
	if retries > 0 {
		how = fmt.Sprintf("still so after %d retries", retries)
	}
	return fmt.Errorf("%w of %s: %s; they stay on the version they were on, %s, with %d of %d actors moved: raise upgrade.max_pause, or find what keeps them busy (a long batch, a slow migration)",
		ErrOverBudget, m.opts.MaxPause, strings.Join(names, ", "), how, moved, total)
}
