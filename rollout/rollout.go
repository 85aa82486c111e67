package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// Upgrader is what a member's upgrade manager (*upgrade.Manager) offers
// the rollout: what runs, and the two ops a follower carries out.
type Upgrader interface {
	Behaviours() []string
	Current(behaviour string) (upgrade.Version, bool)
	Previous(behaviour string) (upgrade.Version, bool)
	Running(behaviour string) (upgrade.Op, bool)
	UpgradeWith(ctx context.Context, behaviour, source string, o upgrade.UpgradeOptions) (mailbox.UpgradeRecord, error)
	RollbackWith(ctx context.Context, behaviour string, o upgrade.RollbackOptions) (mailbox.UpgradeRecord, error)
	LastClusterOp(behaviour string) string
}

// Config configures one member's rollout.
type Config struct {
	// Client reaches the store's etcd cluster; Prefix is the store's.
	Client *clientv3.Client
	Prefix string
	// Member names this member in announcements.
	Member string
	// Upgrader is the member's upgrade manager.
	Upgrader Upgrader
	// Scratch is a folder only the core's user can write (the store
	// folder), where a fetched binary waits for the upgrade that caches it.
	Scratch string
	// Interval is how often the member reconciles (default 1s).
	Interval time.Duration
	// EtcdTimeout bounds each exchange with etcd: storing or fetching a
	// binary, an announcement (default 1m). The upgrade a follow runs is
	// bounded by the member's own settings, not by this.
	EtcdTimeout time.Duration
	// Logger receives one line per publish and follow.
	Logger *slog.Logger
	// SweepAfter is how long a stored binary that no announcement names
	// is kept before the sweep deletes it (default 1h; see sweep).
	SweepAfter time.Duration
}

// sweepEvery is how often a member sweeps the binaries.
const sweepEvery = time.Minute

// Rollout is one member's side of the protocol in the package doc.
type Rollout struct {
	cfg    Config
	client *clientv3.Client
	prefix string
	log    *slog.Logger
	// seen is reconcile's alone (one goroutine).
	seen map[string]*seen
	// own are the revisions of the announcements this member's ops made
	// (Announce, from an op's goroutine), for reconcile to take in: it
	// must not hold a lock across a follow, whose op calls Announce.
	ownMu sync.Mutex
	own   map[string]int64
	// passes carry CatchUp's requests to Run's goroutine.
	passes chan chan error
}

// seen is what the member last knew of a behaviour: the announcement's
// revision, the version it ran then, and when a failed follow may be
// tried again.
type seen struct {
	rev     int64
	local   string
	retryAt time.Time
	backoff time.Duration
}

// announcement is the value of u/BEHAVIOUR.
type announcement struct {
	SHA     string    `json:"sha"`
	Version string    `json:"version"`
	Kind    string    `json:"kind"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Prev    string    `json:"prev,omitempty"`
	// PrevVersion is Prev's version name ("1.0.0 (3f2a9c1b)"), so that a
	// member can find the binary that wrote a state (FetchWriter).
	PrevVersion string `json:"prev_version,omitempty"`
	// Op names the cluster op (upgrade.Op.ClusterOp): each member's
	// history record of its share carries it.
	Op string `json:"op,omitempty"`
}

// ErrStale refuses to announce an op whose starting version is not the
// one announced: the cluster moved on meanwhile.
var ErrStale = fmt.Errorf("the cluster's announced version moved on: %w", upgrade.ErrRefusedByCluster)

// New checks cfg and builds the member's rollout.
func New(cfg Config) (*Rollout, error) {
	if cfg.Client == nil || cfg.Upgrader == nil || cfg.Member == "" || cfg.Scratch == "" {
		return nil, errors.New("rollout: Client, Upgrader, Member and Scratch are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.EtcdTimeout <= 0 {
		cfg.EtcdTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepAfter <= 0 {
		cfg.SweepAfter = time.Hour
	}
	return &Rollout{cfg: cfg, client: cfg.Client, prefix: cfg.Prefix + "/rollout/", log: cfg.Logger, seen: map[string]*seen{}, own: map[string]int64{}, passes: make(chan chan error)}, nil
}

func (r *Rollout) annKey(behaviour string) string { return r.prefix + "u/" + behaviour }

// Run reconciles every Interval until ctx ends. Errors (etcd away, a
// follow that failed) are logged and tried again: the rollout never stops
// the member.
func (r *Rollout) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	var asked chan error
	var swept time.Time
	for {
		err := r.reconcile(ctx, asked != nil)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("cluster rollout: reconcile failed; trying again", "err", err)
		}
		if asked != nil {
			asked <- err
		}
		if time.Since(swept) >= sweepEvery {
			swept = time.Now()
			sctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
			if err := r.sweep(sctx); err != nil && ctx.Err() == nil {
				r.log.Warn("cluster rollout: sweeping the binaries no announcement names failed; trying again later", "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			asked = nil
		case asked = <-r.passes:
		}
	}
}

// CatchUp runs one reconcile pass now, in Run's goroutine, and waits for
// it (Run must be running). A member calls it before it joins the
// cluster, the first time and after it stepped down (cluster.Config.
// BeforeJoin), so that the actors it takes over run the version the
// cluster runs, not the one it ran before it was stopped or cut off: a
// member woken from SIGSTOP after a rollback would otherwise run its new
// share on the version rolled back from until its next pass.
func (r *Rollout) CatchUp(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case r.passes <- done:
	case <-ctx.Done():
		return fmt.Errorf("catch up with the cluster's versions: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("catch up with the cluster's versions: %w", ctx.Err())
	}
}

// reconcile is one pass of the package doc's table over every behaviour;
// catchUp (CatchUp's pass) follows even a behaviour whose last follow
// failed and waits out its backoff.
func (r *Rollout) reconcile(ctx context.Context, catchUp bool) error {
	rctx, cancel := context.WithTimeout(ctx, 10*r.cfg.Interval)
	defer cancel()
	resp, err := r.client.Get(rctx, r.prefix+"u/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read the announcements: %w", err)
	}
	anns := map[string]announcement{}
	revs := map[string]int64{}
	for _, kv := range resp.Kvs {
		var a announcement
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			r.log.Error("cluster rollout: an announcement does not parse; ignored", "key", string(kv.Key), "err", err)
			continue
		}
		b := strings.TrimPrefix(string(kv.Key), r.prefix+"u/")
		anns[b], revs[b] = a, kv.ModRevision
	}
	var errs []error
	for _, b := range r.cfg.Upgrader.Behaviours() {
		if _, busy := r.cfg.Upgrader.Running(b); busy {
			continue
		}
		cur, ok := r.cfg.Upgrader.Current(b)
		if !ok {
			continue
		}
		a, announced := anns[b]
		if err := r.step(ctx, b, cur, a, announced, revs[b], resp.Header.Revision, catchUp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// step reconciles one behaviour.
func (r *Rollout) step(ctx context.Context, b string, cur upgrade.Version, a announcement, announced bool, rev, snapRev int64, catchUp bool) error {
	s, known := r.seen[b]
	if !known {
		s = &seen{rev: -1, local: cur.SHA}
		r.seen[b] = s
	}
	r.ownMu.Lock()
	own, hasOwn := r.own[b]
	if hasOwn && own <= snapRev {
		delete(r.own, b)
	}
	r.ownMu.Unlock()
	if hasOwn && own > snapRev {
		return nil // announced by this member after this pass read: a is stale, look again next pass
	}
	if hasOwn {
		s.rev = own // this member's own announcement: what it runs once its op is over
	}
	moved := known && cur.SHA != s.local
	prev, hasPrev := r.cfg.Upgrader.Previous(b)
	switch {
	case announced && a.SHA == cur.SHA:
		s.rev, s.local = rev, cur.SHA
		return nil
	case !announced && !moved && (known || !hasPrev):
		s.rev = 0
		return nil
	case moved && rev == s.rev, !known && announced && hasPrev && prev.SHA == a.SHA && !rolledBackFrom(a, cur), !known && !announced:
		// Moved here since the announcement seen, or past it (or past
		// the configured version, with nothing announced) before this
		// start, as when it was killed between its share and its
		// announcement: the cluster follows this member.
		return r.publish(ctx, b, cur, a, announced, rev)
	}
	if time.Now().Before(s.retryAt) && !catchUp {
		return nil
	}
	err := r.follow(ctx, b, a, prev, hasPrev)
	if errors.Is(err, upgrade.ErrBusy) {
		return nil // this member's own op (a watched rebuild, say) began meanwhile: look again after it
	}
	if err != nil {
		s.backoff = min(max(2*s.backoff, 2*time.Second), time.Minute)
		s.retryAt = time.Now().Add(s.backoff)
		return fmt.Errorf("follow %s of %q by %s: %w (next try in %s)", a.Version, b, a.By, err, s.backoff)
	}
	s.backoff, s.retryAt = 0, time.Time{}
	now, _ := r.cfg.Upgrader.Current(b)
	s.rev, s.local = rev, now.SHA
	return nil
}

// publish stores cur's binary and announces it, guarded by the revision
// of the announcement this member saw.
func (r *Rollout) publish(ctx context.Context, b string, cur upgrade.Version, old announcement, announced bool, rev int64) error {
	s := r.seen[b]
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	if err := r.publishBinary(ctx, cur.SHA, cur.Path); err != nil {
		return err
	}
	a := announcement{SHA: cur.SHA, Version: cur.Name(), Kind: string(upgrade.KindUpgrade), By: r.cfg.Member, At: time.Now().UTC(), Op: r.cfg.Upgrader.LastClusterOp(b)}
	if announced {
		a.Prev, a.PrevVersion = old.SHA, old.Version
		if cur.SHA == old.Prev && old.Kind != string(upgrade.KindRollback) {
			a.Kind = string(upgrade.KindRollback)
		}
	}
	if !announced {
		rev = 0
	}
	newRev, ok, err := r.put(ctx, b, a, rev)
	if err != nil {
		return err
	}
	if !ok {
		s.rev = -1 // another member announced first: follow it next time
		r.log.Info("cluster rollout: another member announced first; following it", "behaviour", b)
		return nil
	}
	s.rev, s.local = newRev, cur.SHA
	r.log.Info("cluster rollout: announced", "behaviour", b, "kind", a.Kind, "version", a.Version)
	if announced {
		r.dropUnneeded(ctx, b, old, cur.SHA)
	}
	return nil
}

// dropUnneeded deletes the binary that announcement old of behaviour
// kept for rollbacks, once the new announcement (of sha) leaves it two
// versions behind and no other behaviour's announcement uses it. A
// failure leaves it there: it costs space, not correctness.
func (r *Rollout) dropUnneeded(ctx context.Context, behaviour string, old announcement, sha string) {
	if old.Prev == "" || old.Prev == sha || old.Prev == old.SHA {
		return
	}
	resp, err := r.client.Get(ctx, r.prefix+"u/", clientv3.WithPrefix())
	if err != nil {
		return
	}
	for _, kv := range resp.Kvs {
		var a announcement
		if json.Unmarshal(kv.Value, &a) == nil && string(kv.Key) != r.annKey(behaviour) && (a.SHA == old.Prev || a.Prev == old.Prev) {
			return
		}
	}
	if err := r.dropBinary(ctx, old.Prev); err != nil {
		r.log.Warn("cluster rollout: could not delete a binary no announcement needs", "sha256", old.Prev, "err", err)
	}
}

// rolledBackFrom says whether a is a rollback away from cur: a member that
// restarts on cur, with a's version as its previous, is behind the
// cluster, not ahead of it.
func rolledBackFrom(a announcement, cur upgrade.Version) bool {
	return a.Kind == string(upgrade.KindRollback) && a.Prev == cur.SHA
}

// follow carries out announcement a on this member's actors.
func (r *Rollout) follow(ctx context.Context, b string, a announcement, prev upgrade.Version, hasPrev bool) error {
	r.log.Info("cluster rollout: following", "behaviour", b, "kind", a.Kind, "version", a.Version, "by", a.By)
	if hasPrev && prev.SHA == a.SHA {
		_, err := r.cfg.Upgrader.RollbackWith(ctx, b, upgrade.RollbackOptions{ClusterOp: a.Op})
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	path, err := r.fetchBinary(fctx, a.SHA, r.cfg.Scratch)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(path) }()
	_, err = r.cfg.Upgrader.UpgradeWith(ctx, b, path, upgrade.UpgradeOptions{Force: true, NoCanary: true, ClusterOp: a.Op})
	if errors.Is(err, upgrade.ErrSameBinary) {
		return nil
	}
	return err
}

// Announce is the manager's BeforeMove hook (upgrade.Options): an op
// that passed its checks on this member is announced before its first
// actor moves, so that the other members move theirs at the same time
// and hold the new version before any actor that holds it reaches them
// (a member killed in the middle leaves no actor that the survivors
// cannot run). A canary's binary is stored but not announced: the other
// members follow once its bake promoted it.
func (r *Rollout) Announce(ctx context.Context, behaviour string, op upgrade.Op) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	if err := r.publishBinary(ctx, op.To.SHA, op.To.Path); err != nil {
		return err
	}
	if op.Canary != nil {
		return nil
	}
	resp, err := r.client.Get(ctx, r.annKey(behaviour))
	if err != nil {
		return fmt.Errorf("announce %q: %w", behaviour, err)
	}
	var old announcement
	var rev int64
	if len(resp.Kvs) > 0 {
		rev = resp.Kvs[0].ModRevision
		if err := json.Unmarshal(resp.Kvs[0].Value, &old); err != nil {
			return fmt.Errorf("announce %q: the announcement in etcd does not parse: %w", behaviour, err)
		}
		switch old.SHA {
		case op.To.SHA:
			return nil // announced already: this op follows it
		case op.From.SHA:
		default:
			// The cluster moved on (another member announced meanwhile) or
			// this op follows an announcement already replaced: announcing
			// it would turn the cluster back. Reconcile brings this member
			// to what is announced.
			return fmt.Errorf("announce %s of %q: %w: the cluster runs %s (announced by %s)", op.To.Name(), behaviour, ErrStale, old.Version, old.By)
		}
	}
	a := announcement{SHA: op.To.SHA, Version: op.To.Name(), Kind: string(op.Kind), By: r.cfg.Member, At: time.Now().UTC(), Op: op.ClusterOp}
	if rev != 0 {
		a.Prev, a.PrevVersion = old.SHA, old.Version
	}
	newRev, ok, err := r.put(ctx, behaviour, a, rev)
	if err != nil {
		return err
	}
	if !ok {
		// Another member announced first: the same version (every member
		// watches one rebuilt file, say) is this op's to carry out.
		again, err := r.client.Get(ctx, r.annKey(behaviour))
		var won announcement
		if err == nil && len(again.Kvs) > 0 && json.Unmarshal(again.Kvs[0].Value, &won) == nil && won.SHA == op.To.SHA {
			return nil
		}
		return fmt.Errorf("announce %s of %q: %w: another member announced another version first", op.To.Name(), behaviour, ErrStale)
	}
	if rev != 0 {
		r.dropUnneeded(ctx, behaviour, old, op.To.SHA)
	}
	r.ownMu.Lock()
	r.own[behaviour] = newRev
	r.ownMu.Unlock()
	r.log.Info("cluster rollout: announced", "behaviour", behaviour, "kind", a.Kind, "version", a.Version)
	return nil
}

// put writes announcement a of behaviour if the key's revision is still
// rev (0: absent), and returns the new revision; ok is false if another
// member announced first.
func (r *Rollout) put(ctx context.Context, behaviour string, a announcement, rev int64) (int64, bool, error) {
	v, err := json.Marshal(a)
	if err != nil {
		return 0, false, fmt.Errorf("announce %q: %w", behaviour, err)
	}
	key := r.annKey(behaviour)
	tr, err := r.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("announce %q: %w", behaviour, err)
	}
	return tr.Header.Revision, tr.Succeeded, nil
}

// FetchWriter is the upgrade manager's Options.FetchWriter: the binary of
// behaviour's code version code, if the cluster's announcement names it
// (as what runs, or as the version before), fetched to a file of its own
// in Scratch. A member that never ran a version the cluster rolled back
// from gets it so, for an actor whose state that version wrote.
func (r *Rollout) FetchWriter(ctx context.Context, behaviour, code string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.client.Get(ctx, r.annKey(behaviour))
	if err != nil {
		return "", fmt.Errorf("read the announcement of %q: %w", behaviour, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("nothing is announced for %q", behaviour)
	}
	var a announcement
	if err := json.Unmarshal(resp.Kvs[0].Value, &a); err != nil {
		return "", fmt.Errorf("the announcement of %q does not parse: %w", behaviour, err)
	}
	for _, c := range []struct{ sha, name string }{{a.SHA, a.Version}, {a.Prev, a.PrevVersion}} {
		if c.sha != "" && codeOf(c.name) == code {
			return r.fetchBinary(ctx, c.sha, r.cfg.Scratch)
		}
	}
	names := []string{a.Version}
	if a.PrevVersion != "" {
		names = append(names, a.PrevVersion)
	}
	return "", fmt.Errorf("the announcement of %q names %s, not %s", behaviour, strings.Join(names, " and "), code)
}

// codeOf is the code version in a version name ("1.0.0 (3f2a9c1b)").
func codeOf(name string) string {
	code, _, _ := strings.Cut(name, " ")
	return code
}
