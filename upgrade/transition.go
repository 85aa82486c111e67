package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// opRun is one carrying-out of an Op: what each stage of the state machine
// (the package doc's diagram) learns and hands on to the next.
type opRun struct {
	m         *Manager
	behaviour string
	op        *Op
	// down says the state is migrated by the module being left (a
	// rollback) rather than by the one being loaded.
	down bool
	rec  mailbox.UpgradeRecord

	target   *core.LoadedModule
	from     *core.LoadedModule // nil when the old module no longer loads
	migrator *dynamic.Instance  // the module that migrates the state
	actors   []string           // every actor of the behaviour
	todo     []string           // the actors not yet on op.To
}

// transition carries out op (an upgrade, a rollback, or one of those
// resumed after a restart) one stage after the other: load, check,
// journal, move groups, then finish, or on a failed move stop (and maybe
// move back). Each stage is a method of opRun named as in the package doc.
func (m *Manager) transition(ctx context.Context, behaviour string, op *Op, down bool) (rec mailbox.UpgradeRecord, err error) {
	ctx, span := m.startOp(ctx, behaviour, op) // tracing.go
	defer func() { endOp(span, rec, err) }()
	r := &opRun{m: m, behaviour: behaviour, op: op, down: down, rec: mailbox.UpgradeRecord{
		Behaviour: behaviour, Kind: string(op.Kind), Started: time.Now().UTC(), From: op.From.Name(), ClusterOp: op.ClusterOp,
	}}
	if err := r.stage(ctx, "load", r.load); err != nil {
		return r.fail(ctx, err)
	}
	defer r.unloadFrom(ctx)
	err = r.stage(ctx, "check", r.check)
	if err == nil && r.m.opts.BeforeMove != nil {
		err = r.stage(ctx, "before_move", r.beforeMove)
	}
	if err == nil {
		err = r.stage(ctx, "journal", func(context.Context) error { return r.journal() })
	}
	if err != nil {
		r.unload(ctx)
		return r.fail(ctx, err)
	}
	if op.Canary != nil {
		return r.canary(ctx) // bake.go
	}
	var moved []string
	moveErr := r.stage(ctx, "move", func(ctx context.Context) (err error) {
		moved, err = r.moveGroups(ctx)
		return err
	})
	if moveErr != nil {
		return r.stop(ctx, moved, moveErr)
	}
	return r.finish(ctx)
}

// beforeMove tells Options.BeforeMove of the op, once its checks passed
// (not of a resumed op: it was told before its journal). An error that
// wraps ErrRefusedByCluster stops the op with nothing moved; another is
// logged and the op goes on.
func (r *opRun) beforeMove(ctx context.Context) error {
	if r.m.opts.BeforeMove == nil || r.op.resumed {
		return nil
	}
	err := r.m.opts.BeforeMove(ctx, r.behaviour, r.op.snapshot())
	if errors.Is(err, ErrRefusedByCluster) {
		return err
	}
	if err != nil {
		r.m.log.Warn("could not tell the cluster of the upgrade before it moves actors; it goes on here", "behaviour", r.behaviour, "err", err)
	}
	return nil
}

// load starts (or finds) op's target module and its source one, filling
// in their code and schema versions, and picks the module that migrates
// the state: the target's, or for a rollback (down) the newer module
// being left, which knows the way down. A target that loads but does not
// answer is stopped again. Nothing durable changes.
func (r *opRun) load(ctx context.Context) error {
	t0 := time.Now()
	c, op := r.m.host, r.op
	target, err := c.LoadModule(ctx, r.behaviour, op.To.Path, op.To.SHA)
	if err != nil {
		return err
	}
	migrator, err := target.Module(ctx)
	if err != nil {
		r.unload(ctx)
		return err
	}
	info := migrator.Info()
	op.To.Code, op.To.Schema = info.CodeVersion, info.SchemaVersion
	r.target, r.migrator = target, migrator
	// The old module may be gone: only a move back would need it.
	if from, err := c.LoadModule(ctx, r.behaviour, op.From.Path, op.From.SHA); err == nil {
		r.from = from
		if fm, err := from.Module(ctx); err == nil {
			op.From.Code, op.From.Schema = fm.Info().CodeVersion, fm.Info().SchemaVersion
			r.m.learn(r.behaviour, op.From)
			if r.down {
				r.migrator = fm
			}
		}
	}
	r.rec.To, r.rec.From = op.To.Name(), op.From.Name()
	r.m.setRunning(r.behaviour, *op)
	r.rec.Steps = append(r.rec.Steps, mailbox.UpgradeStep{Step: string(StepLoad), Duration: time.Since(t0)})
	return nil
}

// check reads the committed state of every actor of the behaviour, checks
// that the migrator can take each to the target's schema, and notes the
// actors not already on the target (all but those a resumed op moved).
// Nothing durable changes; a failure ends the op with the old version
// serving.
func (r *opRun) check(ctx context.Context) error {
	to := r.op.To
	mi := r.migrator.Info()
	if op := r.op; op.Kind == KindUpgrade && !op.force && !op.resumed && older(to.Code, op.From.Code) {
		return fmt.Errorf("%w: %s would replace %s, which runs now (is the configured binary an old build?); `graft rollback %s` goes back a version, or give --force to upgrade to an older one anyway",
			ErrOlderVersion, to.Name(), op.From.Name(), r.behaviour)
	}
	for _, a := range r.m.host.ActorsOf(r.behaviour) {
		st, err := r.m.host.State(ctx, a)
		if err != nil {
			return err
		}
		if st.Data != nil && st.Schema != to.Schema && !mi.CanMigrate(st.Schema, to.Schema) {
			return fmt.Errorf("%w: actor %q holds schema %d and module %s cannot migrate it to schema %d (it migrates up from %v and down to %v)",
				ErrCannotMigrate, a, st.Schema, mi.CodeVersion, to.Schema, mi.MigratesFrom, mi.MigratesTo)
		}
		r.actors = append(r.actors, a)
		if !to.holds(st) {
			r.todo = append(r.todo, a)
		}
	}
	if cs := r.op.Canary; cs != nil && cs.Group == nil { // a resumed op keeps its group
		group, err := cs.Plan.pick(r.behaviour, r.actors)
		if err != nil {
			return err
		}
		cs.Group, cs.Phase = group, PhaseCanary
	}
	return nil
}

// journal records the op as in progress, with its target live, before
// the first actor is paused: from here a restarted core finishes it.
func (r *opRun) journal() error {
	m, op := r.m, r.op
	m.mu.Lock()
	bs := m.j.Behaviours[r.behaviour]
	bs.InProgress = op
	if !slices.ContainsFunc(bs.Live, func(v Version) bool { return v.SHA == op.To.SHA }) {
		bs.Live = append(bs.Live, op.To)
	}
	err := m.j.save()
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.failpoint(FailpointJournaled)
	m.log.Info(string(op.Kind)+" began", "behaviour", r.behaviour, "from", op.From.Name(), "to", op.To.Name(), "actors", len(r.actors))
	return nil
}

// moveGroups moves the actors still to move to the target, group by group
// (see Manager.move), and returns those that moved.
func (r *opRun) moveGroups(ctx context.Context) ([]string, error) {
	moved, steps, err := r.m.move(ctx, r.target, r.migrator, r.op.To, r.todo, false, r.progress(len(r.todo)))
	r.rec.Steps = append(r.rec.Steps, steps...)
	return moved, err
}

// finish ends an op whose every actor moved: the history says completed,
// the journal makes the target current, and the old module is stopped.
// History first: a crash before the journal says "done" resumes the op,
// finds every actor moved, and records it again; never the other way
// round (a completed upgrade missing from the history).
func (r *opRun) finish(ctx context.Context) (mailbox.UpgradeRecord, error) {
	r.rec.Ended, r.rec.Outcome = time.Now().UTC(), string(OutcomeCompleted)
	if r.op.resumed {
		r.rec.Outcome = string(OutcomeCompletedAfterRestart)
	}
	r.rec = r.m.record(ctx, r.rec)
	if err := r.endJournal(true, len(r.todo)); err != nil {
		return r.fail(ctx, err)
	}
	r.m.failpoint(FailpointDone)
	if _, err := r.m.host.UnloadModule(context.WithoutCancel(ctx), r.behaviour, r.op.From.Path); err != nil {
		r.m.log.Warn("could not stop the old module", "behaviour", r.behaviour, "err", err)
	}
	// The target's shared module migrated the states; when every actor of
	// the behaviour runs in a process of its own, no actor uses it now, and
	// it would run until the next upgrade (UnloadModule keeps a module an
	// actor uses).
	r.unload(ctx)
	return r.rec, nil
}

// stop ends an op whose move failed after moved actors (step 5 of the
// design): no actor is left between versions. With none moved every actor
// stays on the old version and the target is stopped; otherwise the moved
// ones stay, consistent, on the target, unless Options.RollbackOnFailure
// moves them back.
func (r *opRun) stop(ctx context.Context, moved []string, moveErr error) (mailbox.UpgradeRecord, error) {
	if err := r.endJournal(false, len(moved)); err != nil {
		r.m.log.Error("could not update the upgrade journal", "behaviour", r.behaviour, "err", err)
	}
	op := r.op
	if len(moved) == 0 {
		r.unload(ctx)
		return r.fail(ctx, fmt.Errorf("no actor moved, all stay on %s: %w", op.From.Name(), moveErr))
	}
	if r.m.opts.RollbackOnFailure && r.from != nil && !r.down {
		done, err := r.moveBack(ctx, moved, moveErr)
		if done {
			return r.rec, err
		}
		moveErr = errors.Join(moveErr, err)
	}
	return r.fail(ctx, fmt.Errorf("%d of %d actors moved and stay consistent on %s, the rest stay on %s: %w", len(moved), len(r.todo), op.To.Name(), op.From.Name(), moveErr))
}

// moveBack moves the actors a failed upgrade moved back to the old version
// (Options.RollbackOnFailure). Done, it has recorded the op as rolled back
// and err is the op's error; otherwise err says why moving back failed.
// When no actor was on the target before the op began, the target stops
// being live and is stopped.
func (r *opRun) moveBack(ctx context.Context, moved []string, moveErr error) (done bool, err error) {
	m, op := r.m, r.op
	back, steps, err := m.move(ctx, r.from, r.migrator, op.From, moved, false, r.progress(len(moved)))
	r.rec.Steps = append(r.rec.Steps, steps...)
	if err != nil {
		return false, fmt.Errorf("moving the moved actors back failed after %d: %w", len(back), err)
	}
	// History first: its synced write makes the lazy move-back commits
	// durable before the journal stops naming To.
	r.rec.Ended, r.rec.Outcome, r.rec.Error = time.Now().UTC(), string(OutcomeRolledBack), moveErr.Error()
	r.rec = m.record(ctx, r.rec)
	if len(r.todo) == len(r.actors) {
		m.mu.Lock()
		m.j.Behaviours[r.behaviour].Live = []Version{op.From}
		if err := m.j.save(); err != nil {
			m.log.Error("could not update the upgrade journal", "behaviour", r.behaviour, "err", err)
		}
		m.mu.Unlock()
		r.unload(ctx)
	}
	return true, fmt.Errorf("%s of %q failed and the %d moved actors were moved back: %w", op.Kind, r.behaviour, len(back), moveErr)
}

// endJournal takes the op out of the journal. Done, the target becomes
// current; stopped with no actor moved and none on the target before, the
// target stops being live.
func (r *opRun) endJournal(done bool, moved int) error {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[r.behaviour]
	bs.InProgress = nil
	if done {
		bs.completed(r.op)
	} else if moved == 0 && len(r.todo) == len(r.actors) {
		bs.Live = slices.DeleteFunc(bs.Live, func(v Version) bool { return v.SHA == r.op.To.SHA })
	}
	return m.j.save()
}

// fail records the op as failed (abandoned, if a restarted core could not
// finish it) and returns err wrapped with what the op was.
func (r *opRun) fail(ctx context.Context, err error) (mailbox.UpgradeRecord, error) {
	r.rec.Ended, r.rec.Outcome, r.rec.Error = time.Now().UTC(), string(OutcomeFailed), err.Error()
	if r.op.resumed {
		r.rec.Outcome = string(OutcomeAbandoned)
	}
	r.rec.To = r.op.To.Name()
	return r.m.record(ctx, r.rec), fmt.Errorf("%s of %q to %s: %w", r.op.Kind, r.behaviour, r.op.To.Name(), err)
}

// progress starts counting a move of total actors in the op's snapshot
// (Op.Moved of Op.ToMove, for status and the web view) and returns what
// move tells of each group.
func (r *opRun) progress(total int) func(int) {
	m := r.m
	m.mu.Lock()
	if op, ok := m.running[r.behaviour]; ok {
		op.Moved, op.ToMove = 0, total
		op.GroupsMoved, op.Groups = 0, (total+m.opts.GroupSize-1)/m.opts.GroupSize
		m.running[r.behaviour] = op
	}
	m.mu.Unlock()
	return func(n int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if op, ok := m.running[r.behaviour]; ok {
			op.Moved += n
			op.GroupsMoved = min(op.GroupsMoved+1, op.Groups)
			m.running[r.behaviour] = op
		}
	}
}

// unloadFrom stops the old version's shared module if no actor runs on
// it: load started it for a move back, and when every actor of the
// behaviour has a process of its own, or the op moved them all, nothing
// else would stop it.
func (r *opRun) unloadFrom(ctx context.Context) {
	if r.from == nil {
		return
	}
	if _, err := r.m.host.UnloadModule(context.WithoutCancel(ctx), r.behaviour, r.op.From.Path); err != nil {
		r.m.log.Warn("could not stop the old version's unused module", "behaviour", r.behaviour, "err", err)
	}
}

// unload stops the target's shared module if no actor runs on it.
func (r *opRun) unload(ctx context.Context) {
	if _, err := r.m.host.UnloadModule(context.WithoutCancel(ctx), r.behaviour, r.op.To.Path); err != nil {
		r.m.log.Warn("could not stop the unused module", "behaviour", r.behaviour, "err", err)
	}
}

// older says whether code version a is below b, when both are semantic
// versions ("1.2.0"); versions of another form are not compared.
func older(a, b string) bool {
	va, vb := "v"+strings.TrimPrefix(a, "v"), "v"+strings.TrimPrefix(b, "v")
	return semver.IsValid(va) && semver.IsValid(vb) && semver.Compare(va, vb) < 0
}
