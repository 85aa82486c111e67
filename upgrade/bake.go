package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// bakeTick is how often a bake judges the canary before its end.
const bakeTick = 100 * time.Millisecond

// Decision is an operator's early end of a bake (`graft upgrade B
// --promote` or `--abort`).
type Decision string

// The decisions an operator can make during a bake.
const (
	DecisionPromote Decision = "promote"
	DecisionAbort   Decision = "abort"
)

// ErrNotBaking: a promote or abort named a behaviour with no canary
// baking.
var ErrNotBaking = errors.New("no canary upgrade of this behaviour is baking")

// Decide ends behaviour's bake early: promote moves the rest of the
// actors at once, abort rolls the canary back.
func (m *Manager) Decide(behaviour string, d Decision) error {
	m.mu.Lock()
	ch := m.decisions[behaviour]
	m.mu.Unlock()
	if ch == nil {
		return fmt.Errorf("%s %q: %w", d, behaviour, ErrNotBaking)
	}
	select {
	case ch <- d:
		return nil
	default:
		return fmt.Errorf("%s %q: a decision is already on its way", d, behaviour)
	}
}

// openDecisions opens behaviour's channel for an operator's decision when
// its canary op begins (so one made as soon as status shows the op is not
// refused); Manager.end closes it.
func (m *Manager) openDecisions(behaviour string) {
	m.mu.Lock()
	m.decisions[behaviour] = make(chan Decision, 1)
	m.mu.Unlock()
}

// canary carries out a canary op from its journaled phase on (the phases
// are in canary.go's diagram).
func (r *opRun) canary(ctx context.Context) (mailbox.UpgradeRecord, error) {
	cs := r.op.Canary
	r.rec.Canary = cs.Plan.String() + " for " + cs.Plan.Bake.String()
	// Held from before the group moves until the op ends: a message the
	// new version fails for good stays in its place (core's held.go).
	r.m.host.HoldDeadLetters(cs.Group, true)
	defer r.m.host.HoldDeadLetters(cs.Group, false)
	r.m.mu.Lock()
	decisions := r.m.decisions[r.behaviour] // opened with the op (openDecisions)
	r.m.mu.Unlock()
	for {
		var err error
		switch cs.Phase {
		case PhaseCanary:
			err = r.moveCanary(ctx)
		case PhaseBaking:
			err = r.bake(ctx, decisions)
		case PhasePromoting:
			r.rec.Canary += ": promoted: " + cs.Verdict
			moved, err := r.moveGroups(ctx)
			if err != nil {
				return r.stop(ctx, moved, err)
			}
			return r.finish(ctx)
		case PhaseRollingBack:
			return r.rollBackCanary(ctx)
		default:
			err = fmt.Errorf("the journal holds canary phase %q, which this core does not know", cs.Phase)
		}
		if err != nil {
			return r.fail(ctx, err)
		}
	}
}

// setPhase journals the canary's next phase.
func (r *opRun) setPhase(p Phase, verdict string) error {
	m, cs := r.m, r.op.Canary
	m.mu.Lock()
	defer m.mu.Unlock()
	cs.Phase, cs.Verdict = p, verdict
	if p == PhaseBaking {
		cs.BakeUntil = time.Now().Add(cs.Plan.Bake).UTC()
	}
	r.publishLocked()
	return m.j.save()
}

// publishLocked shows the op's canary state in the snapshot that
// InProgress reports; the caller holds m.mu.
func (r *opRun) publishLocked() {
	m := r.m
	if old, ok := m.running[r.behaviour]; ok {
		snap := r.op.snapshot()
		snap.Moved, snap.ToMove = old.Moved, old.ToMove // the last move's progress stays shown
		snap.GroupsMoved, snap.Groups = old.GroupsMoved, old.Groups
		m.running[r.behaviour] = snap
	}
}

// moveCanary moves the canary group's actors still on the old version;
// a failure rolls back those that moved.
func (r *opRun) moveCanary(ctx context.Context) error {
	group := r.op.Canary.Group
	todo := slices.DeleteFunc(slices.Clone(r.todo), func(a string) bool { return !slices.Contains(group, a) })
	moved, steps, err := r.m.move(ctx, r.target, r.migrator, r.op.To, todo, true, r.progress(len(todo)))
	r.rec.Steps = append(r.rec.Steps, steps...)
	if err != nil {
		if len(moved) == 0 && len(todo) == len(group) {
			return fmt.Errorf("no canary actor moved, all stay on %s: %w", r.op.From.Name(), err)
		}
		return r.setPhase(PhaseRollingBack, "moving the canary failed: "+err.Error())
	}
	r.todo = slices.DeleteFunc(r.todo, func(a string) bool { return slices.Contains(group, a) })
	return r.setPhase(PhaseBaking, "")
}

// bake lets both versions serve for the bake window and decides: promote
// or roll back (the next phase, journaled). A bake resumed by a restarted
// core starts its window again: the counts were in memory.
func (r *opRun) bake(ctx context.Context, decisions <-chan Decision) error {
	m, cs := r.m, r.op.Canary
	if r.op.resumed {
		if err := r.setPhase(PhaseBaking, ""); err != nil {
			return err
		}
	}
	m.failpoint(FailpointBaking)
	m.health.watch(r.behaviour, cs.Group)
	defer m.health.unwatch(r.behaviour)
	m.log.Info("canary baking", "behaviour", r.behaviour, "canary", cs.Plan.String(), "actors", len(cs.Group), "until", cs.BakeUntil)
	tick := time.NewTicker(bakeTick)
	defer tick.Stop()
	end := time.NewTimer(time.Until(cs.BakeUntil))
	defer end.Stop()
	gates := cs.Plan.Gates
	held := false // the window ended on too little traffic: InconclusiveHold
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bake interrupted (the journal keeps it: a restarted core bakes again): %w", ctx.Err())
		case d := <-decisions:
			canary, old := m.health.counts(r.behaviour)
			sum := "canary: " + canary.describe() + "; old version: " + old.describe()
			baked := (cs.Plan.Bake - time.Until(cs.BakeUntil)).Round(time.Second) // the record's "for" is the plan's
			if d == DecisionPromote {
				return r.setPhase(PhasePromoting, fmt.Sprintf("promoted by an operator after %s of the bake (%s)", baked, sum))
			}
			return r.setPhase(PhaseRollingBack, fmt.Sprintf("aborted by an operator after %s of the bake (%s)", baked, sum))
		case <-tick.C:
			canary, old := m.health.counts(r.behaviour)
			v := gates.judge(canary, old, held)
			if v.fail {
				return r.setPhase(PhaseRollingBack, v.reason)
			}
			if held && !v.inconclusive {
				return r.setPhase(PhasePromoting, "after a hold for traffic: "+v.reason)
			}
		case <-end.C:
			canary, old := m.health.counts(r.behaviour)
			v := gates.judge(canary, old, true)
			if policy := gates.withDefaults().Inconclusive; v.fail || !v.inconclusive || policy != InconclusiveHold {
				return r.endBake(v, policy)
			}
			held = true
			r.hold(v.reason)
		}
	}
}

// endBake moves a bake whose window ended on to the phase its verdict
// decides: a failed gate rolls back, a passed one promotes, and too
// little traffic to judge does what inconclusive says (promote or roll
// back; hold is the bake's own loop).
func (r *opRun) endBake(v verdict, inconclusive string) error {
	switch {
	case v.fail:
		return r.setPhase(PhaseRollingBack, v.reason)
	case v.inconclusive && inconclusive == InconclusiveRollback:
		return r.setPhase(PhaseRollingBack, "rolled back as inconclusive: "+v.reason)
	}
	return r.setPhase(PhasePromoting, v.reason)
}

// hold tells that the bake's window ended on too little traffic and the
// canary goes on baking until the gates can decide (InconclusiveHold):
// its verdict shows it, in graft status and the progress of graft
// upgrade, with what would end it.
func (r *opRun) hold(reason string) {
	m, cs := r.m, r.op.Canary
	m.mu.Lock()
	cs.Verdict = "held for traffic: " + reason + "; the gates decide once the canary has the attempts they need, or `graft upgrade " + r.behaviour + " --promote` or `--abort` ends it"
	r.publishLocked()
	m.mu.Unlock()
	m.log.Warn("canary bake over on too little traffic to judge; held until there is enough, or an operator promotes or aborts it", "behaviour", r.behaviour, "verdict", reason)
}

// rollBackCanary moves the canary's actors on the new version back with
// its down-migration, records the op as rolled back with what decided,
// and requeues the messages the canary dead-lettered since the op began.
func (r *opRun) rollBackCanary(ctx context.Context) (mailbox.UpgradeRecord, error) {
	m, op, cs := r.m, r.op, r.op.Canary
	onTarget, err := r.onTarget(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	if r.from == nil {
		return r.fail(ctx, fmt.Errorf("the canary must roll back (%s), but the old version %s does not load", cs.Verdict, op.From.Name()))
	}
	back, steps, err := m.move(ctx, r.from, r.migrator, op.From, onTarget, false, r.progress(len(onTarget)))
	r.rec.Steps = append(r.rec.Steps, steps...)
	if err != nil {
		return r.fail(ctx, fmt.Errorf("the canary must roll back (%s), and moving it back failed after %d actors: %w", cs.Verdict, len(back), err))
	}
	requeued := r.requeueCanaryDeadLetters(ctx)
	r.rec.Canary += ": rolled back: " + cs.Verdict
	if requeued > 0 {
		r.rec.Canary += fmt.Sprintf("; %d messages the canary dead-lettered were requeued", requeued)
	}
	r.rec.Ended, r.rec.Outcome, r.rec.Error = time.Now().UTC(), string(OutcomeRolledBack), "canary rolled back: "+cs.Verdict
	r.rec = m.record(ctx, r.rec) // history first: its synced write makes the lazy commits durable
	m.mu.Lock()
	bs := m.j.Behaviours[r.behaviour]
	bs.InProgress = nil
	// No actor is on the target any more; the ones outside the canary are
	// on what they ran before, which may be more than From (an earlier
	// upgrade that stopped part-way), so only the target leaves Live.
	bs.Live = slices.DeleteFunc(bs.Live, func(v Version) bool { return v.SHA == op.To.SHA })
	if !slices.ContainsFunc(bs.Live, func(v Version) bool { return v.SHA == op.From.SHA }) {
		bs.Live = append(bs.Live, op.From)
	}
	err = m.j.save()
	m.mu.Unlock()
	if err != nil {
		m.log.Error("could not update the upgrade journal", "behaviour", r.behaviour, "err", err)
	}
	r.unload(ctx)
	return r.rec, fmt.Errorf("%s of %q to %s: %w", op.Kind, r.behaviour, op.To.Name(), &CanaryRolledBackError{Verdict: cs.Verdict})
}

// CanaryRolledBackError is a canary upgrade's error when the canary was
// rolled back: every actor is on the old version again.
type CanaryRolledBackError struct{ Verdict string }

func (e *CanaryRolledBackError) Error() string { return "the canary was rolled back: " + e.Verdict }

// onTarget lists the behaviour's actors whose committed state says they
// are on the op's target.
func (r *opRun) onTarget(ctx context.Context) ([]string, error) {
	var out []string
	for _, a := range r.actors {
		st, err := r.m.host.State(ctx, a)
		if err != nil {
			return nil, err
		}
		if r.op.To.holds(st) {
			out = append(out, a)
		}
	}
	return out, nil
}

// requeueCanaryDeadLetters moves the messages the canary group
// dead-lettered since the op began back into their mailboxes, and returns
// how many.
func (r *opRun) requeueCanaryDeadLetters(ctx context.Context) int {
	n := 0
	for _, a := range r.op.Canary.Group {
		dls, err := r.m.host.DeadLetters(ctx, a)
		if err != nil {
			r.m.log.Warn("could not list the canary's dead letters", "actor", a, "err", err)
			continue
		}
		for _, dl := range dls {
			if dl.DeadAt.Before(r.op.Started) || dl.To != "" {
				continue
			}
			if _, err := r.m.host.RequeueDeadLetter(ctx, a, dl.Message.Seq); err != nil {
				r.m.log.Warn("could not requeue a message the canary dead-lettered", "actor", a, "seq", dl.Message.Seq, "err", err)
				continue
			}
			n++
		}
	}
	return n
}
