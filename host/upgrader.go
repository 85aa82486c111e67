package host

import (
	"context"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/upgrade"
)

// controlUpgrader serves the control API's upgrade endpoints with the
// upgrade manager. It converts the dry run's report to the API's wire
// type, as core/control may not import the upgrade package (the layering
// rule: core never imports upgrade).
type controlUpgrader struct{ *upgrade.Manager }

var _ control.Upgrader = controlUpgrader{}

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
