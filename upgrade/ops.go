package upgrade

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/mailbox"
)

// Upgrade moves every actor of behaviour to the binary at source (the
// configured source when ""), as described in the package doc. source must
// be absolute: the core cannot know the folder a caller meant it relative
// to. A binary that another user could have written (one not owned by the
// core's user or root, or writable by group or others) is refused, and the
// refusal recorded in the history, unless the config pins its sha256. A
// binary whose last dry run (DryRun) failed is refused with
// ErrDryRunFailed; UpgradeForced runs it anyway.
func (m *Manager) Upgrade(ctx context.Context, behaviour, source string) (mailbox.UpgradeRecord, error) {
	return m.UpgradeWith(ctx, behaviour, source, UpgradeOptions{})
}

// UpgradeForced is Upgrade that runs even a binary whose last dry run
// failed (`graft upgrade --force`).
func (m *Manager) UpgradeForced(ctx context.Context, behaviour, source string) (mailbox.UpgradeRecord, error) {
	return m.UpgradeWith(ctx, behaviour, source, UpgradeOptions{Force: true})
}

// UpgradeOptions shape one upgrade.
type UpgradeOptions struct {
	// Force runs even a binary whose last dry run failed.
	Force bool
	// Canary moves a share of the actors first and bakes (canary.go).
	// Nil: the behaviour's policy (Options.Policies), if it has one.
	Canary *Canary
	// NoCanary moves every actor at once whatever the policy: for an
	// upgrade another member of the cluster already carried out and
	// judged (package rollout).
	NoCanary bool
	// ClusterOp, for an op another member started, is its name (Op.
	// ClusterOp), so that this member's record is a share of the same op.
	ClusterOp string
}

// RollbackOptions shape one rollback.
type RollbackOptions struct {
	// ClusterOp is as in UpgradeOptions.
	ClusterOp string
}

// UpgradeWith is Upgrade shaped by o. A canary upgrade outlives ctx (a
// caller that stops waiting does not end its bake); it ends when the core
// stops, and the next core resumes it in the same phase. Its error when
// the canary was rolled back is a *CanaryRolledBackError.
func (m *Manager) UpgradeWith(ctx context.Context, behaviour, source string, o UpgradeOptions) (mailbox.UpgradeRecord, error) {
	if err := m.checkCanary(behaviour, o); err != nil {
		return mailbox.UpgradeRecord{}, err
	}
	op, err := m.prepareOp(behaviour, source, KindUpgrade)
	var refused *refusal
	if errors.As(err, &refused) {
		return m.record(ctx, refused.rec), err
	}
	if err != nil {
		return mailbox.UpgradeRecord{}, err
	}
	defer m.end(behaviour)
	if m.dryRunFailed(behaviour, op.To.SHA) && !o.Force {
		err := fmt.Errorf("upgrade %q to %s: %w (see `graft history`): fix the binary, or the states it cannot take (`graft state`), and dry-run it again; or give --force to run the upgrade anyway, whose own check still refuses states the new module cannot migrate", behaviour, op.To.Name(), ErrDryRunFailed)
		rec := m.record(ctx, mailbox.UpgradeRecord{
			Behaviour: behaviour, Kind: string(KindUpgrade), Started: op.Started, Ended: time.Now().UTC(),
			From: op.From.Name(), To: op.To.Name(), Outcome: string(OutcomeRefused), Error: err.Error(),
		})
		return rec, err
	}
	op.force = o.Force
	if o.ClusterOp != "" {
		op.ClusterOp = o.ClusterOp
	}
	if plan := m.canaryPlan(behaviour, o.Canary); plan != nil && !o.NoCanary {
		op.Canary = &CanaryState{Plan: *plan}
		m.openDecisions(behaviour)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(m.life, cancel)
		defer func() { stop(); cancel() }()
	}
	m.setRunning(behaviour, *op)
	return m.transition(ctx, behaviour, op, false)
}

// checkCanary refuses, before anything starts or is recorded, a canary
// asked for that cannot be picked: an actor that is not the behaviour's,
// every actor, a behaviour of one actor. A typo in --canary is the
// operator's to fix, not an upgrade that failed. The op's own pick, at
// its check stage, still decides (the actors may change meanwhile).
func (m *Manager) checkCanary(behaviour string, o UpgradeOptions) error {
	m.mu.Lock()
	host := m.host
	_, known := m.sources[behaviour]
	m.mu.Unlock()
	if o.Canary == nil || o.NoCanary || host == nil || !known {
		return nil
	}
	switch o.Canary.Gates.Inconclusive {
	case "", InconclusivePromote, InconclusiveRollback, InconclusiveHold:
	default:
		return fmt.Errorf("upgrade %q: inconclusive %q: give promote, rollback or hold (what a bake on too little traffic to judge ends in): nothing was started", behaviour, o.Canary.Gates.Inconclusive)
	}
	if _, err := o.Canary.pick(behaviour, host.ActorsOf(behaviour)); err != nil {
		if m.opts.Member != "" {
			// In a cluster the canary is taken from this member's actors.
			return fmt.Errorf("upgrade %q: %w, among the actors member %s runs (a canary bakes on the share of the member it starts on): start it on a member with more, or give a larger share: nothing was started", behaviour, err, m.opts.Member)
		}
		return fmt.Errorf("upgrade %q: %w: nothing was started", behaviour, err)
	}
	return nil
}

// canaryPlan is the canary an upgrade of behaviour runs with: asked, or
// the behaviour's policy, or none. The gates an asked canary leaves unset
// are the policy's (the config's thresholds hold for a canary started by
// hand too).
func (m *Manager) canaryPlan(behaviour string, asked *Canary) *Canary {
	p, hasPolicy := m.opts.Policies[behaviour]
	if asked != nil {
		c := *asked
		if hasPolicy {
			g := &c.Gates
			g.FailureRateIncrease = cmp.Or(g.FailureRateIncrease, p.Gates.FailureRateIncrease)
			g.P99Ratio = cmp.Or(g.P99Ratio, p.Gates.P99Ratio)
			g.MinMessages = cmp.Or(g.MinMessages, p.Gates.MinMessages)
			g.Inconclusive = cmp.Or(g.Inconclusive, p.Gates.Inconclusive)
		}
		return &c
	}
	if hasPolicy {
		return &p
	}
	return nil
}

// refusal is prepareOp's error for a binary refused as untrusted: the
// caller records rec in the history.
type refusal struct {
	rec mailbox.UpgradeRecord
	err error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// prepareOp begins an op of kind on behaviour towards the binary at source
// (the configured one when ""): it checks the path, takes the behaviour
// (m.begin; the caller ends it unless an error is returned) and caches the
// binary through the trust checks. An untrusted binary is a *refusal.
func (m *Manager) prepareOp(behaviour, source string, kind Kind) (*Op, error) {
	if source != "" && !filepath.IsAbs(source) {
		return nil, fmt.Errorf("%s %q with %s: %w: the core would resolve it against its own working folder, not yours; give an absolute path (graft upgrade --binary sends one)", kind, behaviour, source, ErrRelativePath)
	}
	m.mu.Lock()
	if source == "" {
		source = m.sources[behaviour]
	}
	fromSource := source == m.sources[behaviour] && kind == KindUpgrade
	pin := m.pins[behaviour]
	m.mu.Unlock()
	op := &Op{Kind: kind, Started: time.Now().UTC()}
	if err := m.begin(behaviour, op); err != nil {
		return nil, err
	}
	cur, _ := m.Current(behaviour)
	accept := m.accept(behaviour, pin, source, cur.SHA)
	if fromSource {
		accept = func(sha string, fi os.FileInfo) error {
			m.noteSource(behaviour, sha) // acted on, whatever the outcome: a broken build is not retried at every start
			return m.accept(behaviour, pin, source, cur.SHA)(sha, fi)
		}
	}
	path, sha, err := m.cache.Add(source, accept)
	if errors.Is(err, trust.ErrUntrusted) {
		m.end(behaviour)
		return nil, &refusal{err: fmt.Errorf("%s %q: %w", kind, behaviour, err), rec: mailbox.UpgradeRecord{
			Behaviour: behaviour, Kind: string(kind), Started: op.Started, Ended: time.Now().UTC(),
			From: cur.Name(), To: Version{SHA: sha}.Name(), Outcome: string(OutcomeRefused), Error: err.Error(),
		}}
	}
	if err != nil {
		m.end(behaviour)
		return nil, fmt.Errorf("%s %q: %w", kind, behaviour, err)
	}
	op.From, op.To = cur, Version{SHA: sha, Path: path, Source: source}
	return op, nil
}

// noteDryRun journals whether the dry run of behaviour's binary sha
// found actors it cannot take, so that the verdict outlives the core.
func (m *Manager) noteDryRun(behaviour, sha string, failed bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil {
		return nil
	}
	bs.FailedDryRuns = slices.DeleteFunc(bs.FailedDryRuns, func(s string) bool { return s == sha })
	if failed {
		bs.FailedDryRuns = append(bs.FailedDryRuns, sha)
	}
	return m.j.save()
}

// dryRunFailed says whether the last dry run of behaviour's binary sha
// failed.
func (m *Manager) dryRunFailed(behaviour, sha string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	return bs != nil && slices.Contains(bs.FailedDryRuns, sha)
}

// accept is the cache's Accept for a binary offered for behaviour: not the
// bytes already current (curSHA), the config's pin if there is one, and
// otherwise a file only the core's user or root could have written.
func (m *Manager) accept(behaviour, pin, source, curSHA string) Accept {
	return func(sha string, fi os.FileInfo) error {
		if sha == curSHA {
			return fmt.Errorf("upgrade %q with %s: %w", behaviour, source, ErrSameBinary)
		}
		if pin != "" {
			if !strings.EqualFold(pin, sha) {
				return fmt.Errorf("binary %s has sha256 %s and the config pins %s for behaviour %q: rebuild it, or update the pin to allow it", source, sha, pin, behaviour)
			}
			return nil // pinned: these exact bytes are trusted whoever wrote the file
		}
		if err := trust.Given(fi, source, "plugin binary"); err != nil {
			return fmt.Errorf("%w; or, to run these exact bytes anyway, pin them in the config (behaviours.%s.sha256: %s)", err, behaviour, sha)
		}
		return nil
	}
}

// Rollback moves every actor of behaviour back to the version it ran
// before the current one, migrating the state down with the newer module
// (like Erlang's {down, Vsn}); it is refused when that module cannot
// migrate down. Successive rollbacks walk back the lineage (v3 -> v2 ->
// v1); at the oldest version it is refused with ErrNoPrevious.
func (m *Manager) Rollback(ctx context.Context, behaviour string) (mailbox.UpgradeRecord, error) {
	return m.RollbackWith(ctx, behaviour, RollbackOptions{})
}

// RollbackWith is Rollback shaped by o.
func (m *Manager) RollbackWith(ctx context.Context, behaviour string, o RollbackOptions) (mailbox.UpgradeRecord, error) {
	m.mu.Lock()
	_, configured := m.sources[behaviour]
	bs := m.j.Behaviours[behaviour]
	var op *Op
	var refused error
	switch {
	case !configured || bs == nil:
		refused = fmt.Errorf("rollback %q: %w", behaviour, m.unknownLocked(behaviour))
	case bs.previous() == nil:
		refused = fmt.Errorf("rollback %q: %s is the oldest version of %q this core has run: %w", behaviour, bs.Current.Name(), behaviour, ErrNoPrevious)
	default:
		op = &Op{Kind: KindRollback, From: bs.Current, To: *bs.previous(), Started: time.Now().UTC(), ClusterOp: o.ClusterOp}
	}
	m.mu.Unlock()
	if refused != nil {
		return mailbox.UpgradeRecord{}, refused
	}
	if err := m.begin(behaviour, op); err != nil {
		return mailbox.UpgradeRecord{}, err
	}
	defer m.end(behaviour)
	if err := m.cache.Verify(op.To.SHA); err != nil {
		return mailbox.UpgradeRecord{}, fmt.Errorf("rollback %q to %s: the cached binary cannot be trusted: %w", behaviour, op.To.Name(), err)
	}
	return m.transition(ctx, behaviour, op, true)
}

// unknownLocked is the error for a behaviour that is not in the config,
// listing the ones that are; the caller holds m.mu.
func (m *Manager) unknownLocked(behaviour string) error {
	names := make([]string, 0, len(m.sources))
	for n := range m.sources {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Errorf("%w %q: it is not in the config (its behaviours: %s)", ErrUnknownBehaviour, behaviour, strings.Join(names, ", "))
}

// resume finishes an upgrade the previous core was killed in.
func (m *Manager) resume(ctx context.Context, behaviour string, op Op) (mailbox.UpgradeRecord, error) {
	if err := m.begin(behaviour, &op); err != nil {
		return mailbox.UpgradeRecord{}, err
	}
	defer m.end(behaviour)
	m.log.Info("finishing an upgrade interrupted by a core restart", "behaviour", behaviour, "kind", string(op.Kind), "from", op.From.Name(), "to", op.To.Name())
	op.resumed = true
	if op.Canary != nil {
		m.openDecisions(behaviour)
		// Prepare held the group's dead letters from the core's start;
		// the op lets them go however it ends, even before its bake.
		defer m.host.HoldDeadLetters(op.Canary.Group, false)
	}
	return m.transition(ctx, behaviour, &op, op.Kind == KindRollback)
}
