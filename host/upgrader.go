package host

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/metrics"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// controlUpgrader serves the control API's upgrade endpoints with the
// upgrade manager. It converts requests and reports between the API's
// wire types and the upgrade package's, as core/control may not import
// the upgrade package (the layering rule: core never imports upgrade).
type controlUpgrader struct{ *upgrade.Manager }

var _ control.Upgrader = controlUpgrader{}

// Upgrade implements control.Upgrader.
func (u controlUpgrader) Upgrade(ctx context.Context, behaviour string, req control.UpgradeRequest) (mailbox.UpgradeRecord, error) {
	o := upgrade.UpgradeOptions{Force: req.Force}
	if req.Canary != "" {
		c, err := upgrade.ParseCanary(req.Canary, time.Duration(req.BakeSeconds*float64(time.Second)))
		if err != nil {
			return mailbox.UpgradeRecord{}, fmt.Errorf("upgrade %q: %w: %w", behaviour, control.ErrBadRequest, err)
		}
		c.Gates = upgrade.Gates{FailureRateIncrease: req.FailureRateIncrease, P99Ratio: req.P99Ratio, MinMessages: req.MinMessages, Inconclusive: req.Inconclusive}
		o.Canary = c
	}
	return u.UpgradeWith(ctx, behaviour, req.Binary, o)
}

// Decide implements control.Upgrader.
func (u controlUpgrader) Decide(behaviour string, promote bool) error {
	d := upgrade.DecisionAbort
	if promote {
		d = upgrade.DecisionPromote
	}
	return u.Manager.Decide(behaviour, d)
}

// InProgress implements control.Upgrader: the ops running, by behaviour.
func (u controlUpgrader) InProgress() []control.UpgradeProgress {
	ops := u.RunningOps()
	out := make([]control.UpgradeProgress, 0, len(ops))
	now := time.Now()
	for b, op := range ops {
		p := control.UpgradeProgress{
			Behaviour: b, Kind: string(op.Kind), From: op.From.Name(), To: op.To.Name(), Started: op.Started, Phase: "moving",
			Moved: op.Moved, ToMove: op.ToMove, GroupsMoved: op.GroupsMoved, Groups: op.Groups,
		}
		if op.Kind == upgrade.KindDryRun {
			p.Phase = "dry run"
		}
		if cs := op.Canary; cs != nil {
			p.Phase, p.Canary, p.Group, p.Verdict = string(cs.Phase), cs.Plan.String(), cs.Group, cs.Verdict
			if !cs.BakeUntil.IsZero() {
				p.BakeUntil = cs.BakeUntil
				if cs.Phase == upgrade.PhaseBaking {
					p.BakeLeftSeconds = max(0, cs.BakeUntil.Sub(now).Seconds())
				}
			}
			if c, o, ok := u.CanaryHealth(b); ok {
				p.Health = &control.CanaryHealth{Canary: groupHealth(c), Old: groupHealth(o)}
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b control.UpgradeProgress) int { return strings.Compare(a.Behaviour, b.Behaviour) })
	return out
}

// DryRun implements control.Upgrader.
func (u controlUpgrader) DryRun(ctx context.Context, behaviour, binary string) (control.DryRunReport, error) {
	rep, err := u.Manager.DryRun(ctx, behaviour, binary)
	if err != nil {
		return control.DryRunReport{}, err
	}
	out := control.DryRunReport{
		Behaviour: rep.Behaviour, From: rep.From, To: rep.To, Actors: rep.Actors, NoState: rep.NoState,
		Migrated: rep.Migrated, RoundTrip: rep.RoundTrip, Failed: rep.Failed(), Blocking: rep.Blocking(),
		Counts: rep.Counts, Summary: rep.Summary(),
		TookSecond: rep.Took.Seconds(),
	}
	if r := rep.Replay; r != nil {
		out.Replay = &control.DryRunReplay{Messages: r.Messages, Counts: r.Counts, Examples: failures(r.Examples)}
	}
	for kind, fs := range rep.Failures {
		if out.Failures == nil {
			out.Failures = map[string][]control.DryRunFailure{}
		}
		for _, f := range fs {
			out.Failures[kind] = append(out.Failures[kind], control.DryRunFailure{Actor: f.Actor, Detail: f.Detail})
		}
	}
	return out, nil
}

// failures is a report's examples as the API shows them.
func failures(in map[string][]upgrade.DryRunFailure) map[string][]control.DryRunFailure {
	out := map[string][]control.DryRunFailure{}
	for kind, fs := range in {
		for _, f := range fs {
			out[kind] = append(out[kind], control.DryRunFailure{Actor: f.Actor, Detail: f.Detail})
		}
	}
	return out
}

// policies are the config's canary policies as the upgrade manager takes
// them (upgrade.Options.Policies).
func policies(cfg *config.Config) map[string]upgrade.Canary {
	out := map[string]upgrade.Canary{}
	for b, p := range cfg.UpgradePolicies {
		if !p.HasCanary() {
			continue
		}
		out[b] = upgrade.Canary{
			Share: p.CanaryShare, Actors: slices.Clone(p.CanaryActors), Bake: p.Bake,
			Gates: upgrade.Gates{FailureRateIncrease: p.FailureRateIncrease, P99Ratio: p.P99Ratio, MinMessages: p.MinMessages, Inconclusive: p.Inconclusive},
		}
	}
	return out
}

func groupHealth(g upgrade.GroupHealth) control.GroupHealth {
	return control.GroupHealth{Handled: g.Handled, Failed: g.Failed, DeadLettered: g.DeadLettered, FailureRate: g.FailureRate, P99Seconds: g.P99.Seconds()}
}

// upgradePhases are the phases of the ops in progress, by behaviour, for
// graft_upgrade_phase.
func upgradePhases(m *upgrade.Manager) func() map[string]string {
	return func() map[string]string {
		out := map[string]string{}
		for _, p := range (controlUpgrader{m}).InProgress() {
			out[p.Behaviour] = p.Phase
		}
		return out
	}
}

// liveModules are the module versions that may run actors, for
// graft_module_info.
func liveModules(m *upgrade.Manager) func() []metrics.ModuleInfo {
	return func() []metrics.ModuleInfo {
		var out []metrics.ModuleInfo
		for b, vs := range m.Live() {
			for _, v := range vs {
				out = append(out, metrics.ModuleInfo{Behaviour: b, Version: cmp.Or(v.Code, "unknown"), SHA256: v.SHA})
			}
		}
		return out
	}
}
