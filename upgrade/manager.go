package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// Errors callers branch on.
var (
	// ErrSameBinary: the binary offered is the one running; a rebuild that
	// yields the same bytes is not an upgrade.
	ErrSameBinary = errors.New("same binary as the running version: nothing to upgrade")
	// ErrBusy: an upgrade or rollback of the behaviour is already running.
	ErrBusy = errors.New("an upgrade of this behaviour is already running")
	// ErrNoPrevious: the behaviour is at the oldest version it has run;
	// there is no earlier version to roll back to.
	ErrNoPrevious = errors.New("no previous version to roll back to")
	// ErrUnknownBehaviour: the behaviour named is not in the config.
	ErrUnknownBehaviour = errors.New("unknown behaviour")
	// ErrRelativePath: a binary was named by a relative path, which the
	// core would resolve against its own working folder rather than the
	// caller's.
	ErrRelativePath = errors.New("relative binary path")
	// ErrCannotMigrate: the module cannot migrate the actors' state schema.
	ErrCannotMigrate = errors.New("module cannot migrate the state")
	// ErrDryRunFailed: the last dry run of this binary found actors it
	// cannot take; force the upgrade to run it anyway.
	ErrDryRunFailed = errors.New("the last dry run of this binary failed")
	// ErrOlderVersion: an upgrade to a code version older than the one
	// running, refused unless forced (a rollback is the way back).
	ErrOlderVersion = errors.New("the binary is an older version than the one running")
	// ErrRefusedByCluster: the cluster this core is a member of runs
	// another version than the op starts from (another member announced
	// meanwhile); nothing moved, and the member follows the cluster.
	ErrRefusedByCluster = errors.New("the cluster moved to another version")
)

// Options configure a Manager.
type Options struct {
	// Dir holds the binary cache and the upgrade journal; put it next to
	// the store (e.g. STORE/modules).
	Dir string
	// GroupSize is how many actors are paused, migrated and committed in
	// one store transaction (default 64).
	GroupSize int
	// DrainTimeout bounds the wait for an actor's batch in flight to commit
	// when it is paused (default 5 s).
	DrainTimeout time.Duration
	// MigrateTimeout bounds one state migration (default 10 s).
	MigrateTimeout time.Duration
	// MaxPause is each actor's pause budget: an actor whose drain plus
	// migration would hold it longer is resumed where it was and retried
	// after the rest (budget.go). 0 is DefaultMaxPause; below 0, none.
	MaxPause time.Duration
	// StopOverBudget stops the op at the first group with an actor over
	// budget, instead of retrying those actors after the rest.
	StopOverBudget bool
	// RollbackOnFailure moves the actors an upgrade already moved back to
	// the old version when a later actor fails (default: they stay on the
	// new version, which is consistent, and the failure is reported).
	RollbackOnFailure bool
	// Debounce is how long a watched binary must stay quiet before it is
	// considered written (default 250 ms).
	Debounce time.Duration
	// Logger receives upgrade events (default slog.Default()).
	Logger *slog.Logger
	// OnRecord, if set, is told of every history record as it is written
	// (for metrics such as upgrade pause times).
	OnRecord func(mailbox.UpgradeRecord)
	// BeforeMove, if set, is told of an upgrade or rollback that passed
	// its checks, before its first actor moves, with the versions filled
	// in: a cluster announces it there (package rollout), so that the
	// other members take the new version before any actor that holds it
	// can reach them. An error that wraps ErrRefusedByCluster stops the op
	// before anything moved; another is logged and the op goes on.
	BeforeMove func(ctx context.Context, behaviour string, op Op) error
	// Policies are, by behaviour, the canary that upgrades of it start
	// with when none is asked for (a watched rebuild, `graft upgrade`
	// without --canary). A behaviour without one upgrades all its actors,
	// in groups.
	Policies map[string]Canary
	// FetchWriter, if set, fetches from the cluster (package rollout) the
	// binary of behaviour's code version code, for a state that version
	// wrote which this member never ran: WrittenBy caches it. It returns
	// a file of the core's own, which the caller removes.
	FetchWriter func(ctx context.Context, behaviour, code string) (path string, err error)
	// Member, in a cluster, is this core's member name: each history
	// record names it, and an op started here gets a ClusterOp name that
	// the members following it share. "" alone.
	Member string
	// Tracing, if not nil, traces each op, its stages and its groups with
	// OpenTelemetry (tracing.go); nil traces nothing.
	Tracing trace.TracerProvider
}

// Manager carries out upgrades and rollbacks of behaviours and keeps the
// binary cache and journal. It implements core.ModuleSelector, so a core
// restarted mid-upgrade runs every actor on a version that can read its
// committed state.
type Manager struct {
	opts   Options
	log    *slog.Logger
	cache  *Cache
	tracer trace.Tracer

	mu      sync.Mutex
	j       *journal
	sources map[string]string // behaviour -> configured source binary
	pins    map[string]string // behaviour -> sha256 pin from the config
	running map[string]Op     // snapshots of the upgrades in progress, by behaviour
	host    Host              // the core, once attached
	// life ends when the core the manager is attached to stops: a canary
	// upgrade outlives its caller, not the core (bake.go).
	life context.Context
	// decisions take an operator's promote or abort to a baking canary.
	decisions map[string]chan Decision
	// health counts the canary's and the old group's messages (health.go).
	health *health

	// attaching counts the work Attach runs in the background, so tests
	// can wait for it (export_test.go) before changing a source binary.
	attaching sync.WaitGroup
}

var (
	_ core.ModuleSelector = (*Manager)(nil)
	_ core.StateWriters   = (*Manager)(nil)
)

// New opens the binary cache and journal in opts.Dir.
func New(opts Options) (*Manager, error) {
	if opts.GroupSize <= 0 {
		opts.GroupSize = 64
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.MigrateTimeout <= 0 {
		opts.MigrateTimeout = 10 * time.Second
	}
	switch {
	case opts.MaxPause == 0:
		opts.MaxPause = DefaultMaxPause
	case opts.MaxPause < 0:
		opts.MaxPause = 0 // no budget
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cache, err := OpenCache(opts.Dir)
	if err != nil {
		return nil, err
	}
	j, err := loadJournal(cache)
	if err != nil {
		return nil, err
	}
	return &Manager{
		opts: opts, log: opts.Logger, cache: cache, j: j, tracer: newTracer(opts.Tracing),
		sources: map[string]string{}, pins: map[string]string{}, running: map[string]Op{},
		life: context.Background(), decisions: map[string]chan Decision{},
		health: &health{next: nopObserver{}, watches: map[string]*bakeWatch{}},
	}, nil
}

// Prepare points cfg at the cache: every behaviour's configured binary is
// copied in (the first time, if it is trusted: see Upgrade) and the core
// will run the version the journal names as current, pinned by its
// sha256; every version that may hold actors is verified in the cache
// first. A behaviour whose configured binary was deleted starts from the
// cache, with a warning. cfg.Modules is set to m, and cfg.Observer to m's
// health counter for canary bakes, which passes every event on to the
// observer cfg had. Call it before core.New.
func (m *Manager) Prepare(cfg *core.Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, b := range cfg.Behaviours {
		src, err := filepath.Abs(b.Binary)
		if err != nil {
			src = b.Binary
		}
		m.sources[name] = src
		m.pins[name] = b.SHA256
		st := m.j.Behaviours[name]
		if st == nil {
			path, sha, err := m.cache.Add(src, m.accept(name, b.SHA256, src, ""))
			if err != nil {
				errs = append(errs, fmt.Errorf("behaviour %q: %w", name, err))
				continue
			}
			v := Version{SHA: sha, Path: path, Source: src}
			st = &behaviourState{Current: v, Live: []Version{v}, SourceSHA: sha}
			m.j.Behaviours[name] = st
		} else if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			m.log.Warn("configured plugin binary does not exist; starting from the version in the binary cache (build it again to upgrade)",
				"behaviour", name, "path", src, "version", st.Current.Name())
		}
		if err := m.verifyLive(name, st); err != nil {
			errs = append(errs, err)
		}
		b.Binary, b.SHA256 = st.Current.Path, st.Current.SHA
		cfg.Behaviours[name] = b
		if op := st.InProgress; op != nil && op.Canary != nil {
			// A canary the last core was killed in: its group's failing
			// messages are held from the first batch on, not only once
			// the resumed op reaches its bake (core's held.go).
			cfg.HeldDeadLetters = append(cfg.HeldDeadLetters, op.Canary.Group...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cfg.Modules = m
	if cfg.Observer != nil {
		m.health.next = cfg.Observer
	}
	cfg.Observer = m.health
	return m.j.save()
}

// verifyLive checks, in the cache, every version of behaviour that may
// hold actors or that an interrupted upgrade will load.
func (m *Manager) verifyLive(name string, st *behaviourState) error {
	vs := slices.Clone(st.Live)
	if st.InProgress != nil {
		vs = append(vs, st.InProgress.From, st.InProgress.To)
	}
	var errs []error
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.SHA] {
			continue
		}
		seen[v.SHA] = true
		err := m.cache.Verify(v.SHA)
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("behaviour %q: version %s is missing from the binary cache %s: restore the cache or remove the behaviour from %s", name, v.Name(), m.cache.Dir(), m.j.path))
		case err != nil:
			errs = append(errs, fmt.Errorf("behaviour %q: version %s: %w", name, v.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Knows says whether the upgrade journal in dir (Options.Dir) names
// behaviour, so its binary is in the cache and a deleted source need not
// stop the core from starting. It is only a hint, for checking the config
// before the core starts: Prepare verifies the journal and the cache.
func Knows(dir, behaviour string) bool { return peekJournal(dir, behaviour) }

// Binary implements core.ModuleSelector: the live version whose code and
// schema wrote st, else the current version.
func (m *Manager) Binary(behaviour string, st mailbox.State) (string, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil {
		return "", ""
	}
	for _, v := range bs.Live {
		if v.holds(st) {
			return v.Path, v.SHA
		}
	}
	return bs.Current.Path, bs.Current.SHA
}

// WrittenBy implements core.StateWriters: the cached binary of a version
// of behaviour that wrote st, among those the journal names (the ones
// rolled back from included), checked against its sha256.
func (m *Manager) WrittenBy(ctx context.Context, behaviour string, st mailbox.State) (string, string, error) {
	m.mu.Lock()
	var found *Version
	if bs := m.j.Behaviours[behaviour]; bs != nil {
		known := bs.versions()
		for i := range bs.Retired {
			known = append(known, &bs.Retired[i])
		}
		for _, v := range known {
			if v.holds(st) {
				found = v
				break
			}
		}
	}
	m.mu.Unlock()
	if found == nil && m.opts.FetchWriter != nil {
		return m.fetchWriter(ctx, behaviour, st)
	}
	if found == nil {
		return "", "", fmt.Errorf("%s %s (schema %d): %w", behaviour, st.Module, st.Schema, core.ErrNoStateWriter)
	}
	if err := m.cache.Verify(found.SHA); err != nil {
		return "", "", fmt.Errorf("%s %s: the cached binary cannot be trusted: %w", behaviour, found.Name(), err)
	}
	return found.Path, found.SHA, nil
}

// fetchWriter is WrittenBy for a version this member never ran: fetched
// from the cluster (Options.FetchWriter), cached through the same checks
// as an upgrade's binary (a config pin holds), and kept as retired.
func (m *Manager) fetchWriter(ctx context.Context, behaviour string, st mailbox.State) (string, string, error) {
	path, err := m.opts.FetchWriter(ctx, behaviour, st.Module)
	if err != nil {
		return "", "", fmt.Errorf("%s %s (schema %d): %w; the cluster has none either: %w", behaviour, st.Module, st.Schema, core.ErrNoStateWriter, err)
	}
	defer func() { _ = os.Remove(path) }()
	m.mu.Lock()
	pin := m.pins[behaviour]
	m.mu.Unlock()
	cpath, sha, err := m.cache.Add(path, m.accept(behaviour, pin, path, ""))
	if err != nil {
		return "", "", fmt.Errorf("%s %s from the cluster: %w", behaviour, st.Module, err)
	}
	v := Version{Code: st.Module, Schema: st.Schema, SHA: sha, Path: cpath, Source: "the cluster"}
	m.mu.Lock()
	defer m.mu.Unlock()
	if bs := m.j.Behaviours[behaviour]; bs != nil {
		bs.Retired = slices.DeleteFunc(bs.Retired, func(r Version) bool { return r.SHA == sha })
		bs.Retired = append(bs.Retired, v)
		bs.Retired = bs.Retired[max(0, len(bs.Retired)-retiredKept):]
		if err := m.j.save(); err != nil {
			m.log.Warn("could not journal a version fetched for a down-migration; it is fetched again next time", "behaviour", behaviour, "err", err)
		}
	}
	return cpath, sha, nil
}

// DescribeBinary implements core.BinaryDescriber: the file the cached
// binary at path was copied from and its code version, so errors name what
// the user built rather than the cache file.
func (m *Manager) DescribeBinary(behaviour, path string) (source, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil {
		return "", ""
	}
	var known []Version
	for _, v := range bs.versions() {
		known = append(known, *v)
	}
	if op, ok := m.running[behaviour]; ok {
		known = append(known, op.To, op.From)
	}
	for _, v := range known { // one binary may appear several times, each knowing part
		if v.Path != path {
			continue
		}
		if source == "" {
			source = v.Source
			if source == "" && v.SHA == bs.SourceSHA { // a journal from before sources were kept
				source = m.sources[behaviour]
			}
		}
		if version == "" {
			version = v.Code
		}
	}
	return source, version
}

// Current returns the version new actors of behaviour start on.
func (m *Manager) Current(behaviour string) (Version, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil {
		return Version{}, false
	}
	return bs.Current, true
}

// Previous returns the version a rollback of behaviour would go back to.
func (m *Manager) Previous(behaviour string) (Version, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil || bs.previous() == nil {
		return Version{}, false
	}
	return *bs.previous(), true
}

// Behaviours lists the configured behaviours, sorted.
func (m *Manager) Behaviours() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.sources))
	for b := range m.sources {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// Live lists, by behaviour, the versions that may hold actors (the
// current one first), as the journal has them.
func (m *Manager) Live() map[string][]Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]Version, len(m.j.Behaviours))
	for b, bs := range m.j.Behaviours {
		out[b] = slices.Clone(bs.Live)
	}
	return out
}

// Running returns the upgrade or rollback of behaviour in progress, if any.
func (m *Manager) Running(behaviour string) (Op, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, ok := m.running[behaviour]
	return op.snapshot(), ok
}

// RunningOps is every op in progress by behaviour (snapshots, as Running).
func (m *Manager) RunningOps() map[string]Op {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Op, len(m.running))
	for b, op := range m.running {
		out[b] = op.snapshot()
	}
	return out
}

// setRunning refreshes the snapshot of behaviour's upgrade in progress.
func (m *Manager) setRunning(behaviour string, op Op) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.running[behaviour]; ok {
		m.running[behaviour] = op.snapshot()
	}
}

// learn records the code and schema version of a cached binary, learnt
// from its running module, wherever the journal names that binary.
func (m *Manager) learn(behaviour string, v Version) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	if bs == nil {
		return
	}
	fill := func(x *Version) {
		if x != nil && x.SHA == v.SHA && x.Code == "" {
			x.Code, x.Schema = v.Code, v.Schema
		}
	}
	for _, x := range bs.versions() {
		fill(x)
	}
}

// Attach hands m the running core's upgrade hooks (pass c.Upgrades() of
// the *core.Core). It finishes any upgrade a previous core was killed in
// the middle of, then upgrades behaviours whose source binary changed
// while the core was down. It runs them in the background and returns at
// once; outcomes go to the log and the history.
func (m *Manager) Attach(ctx context.Context, host Host) {
	m.cache.pins.Store(host.Pins())
	m.mu.Lock()
	m.host, m.life = host, ctx
	type todo struct {
		behaviour string
		op        *Op
		source    string
	}
	var work []todo
	for name, bs := range m.j.Behaviours {
		if _, configured := m.sources[name]; !configured {
			continue
		}
		work = append(work, todo{name, bs.InProgress, m.sources[name]})
	}
	m.mu.Unlock()
	for _, w := range work {
		m.attaching.Add(1)
		go func() {
			defer m.attaching.Done()
			if w.op != nil {
				if _, err := m.resume(ctx, w.behaviour, *w.op); err != nil {
					m.log.Error("could not finish the interrupted upgrade", "behaviour", w.behaviour, "err", err)
				}
			}
			if !m.sourceChanged(w.behaviour, w.source) {
				return
			}
			m.log.Info("plugin binary changed while the core was down; upgrading", "behaviour", w.behaviour, "path", w.source)
			if _, err := m.Upgrade(ctx, w.behaviour, w.source); err != nil && !errors.Is(err, ErrSameBinary) {
				m.log.Error("upgrade to the binary changed while the core was down failed", "behaviour", w.behaviour, "err", err)
			}
		}()
	}
}

// sourceChanged says whether the source binary differs from the one the
// core last acted on.
func (m *Manager) sourceChanged(behaviour, source string) bool {
	sha, err := hashFile(source)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.j.Behaviours[behaviour]
	return bs != nil && sha != bs.SourceSHA && sha != bs.Current.SHA
}

// noteSource records that the core acted on the source with this sha.
func (m *Manager) noteSource(behaviour, sha string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if bs := m.j.Behaviours[behaviour]; bs != nil {
		bs.SourceSHA = sha
	}
}

// LastClusterOp is the ClusterOp of the last op this member completed on
// behaviour ("" if none), as the journal keeps it across restarts: the
// rollout announces a promoted canary, or the share of a member killed
// before it announced, under the name its record has.
func (m *Manager) LastClusterOp(behaviour string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if bs := m.j.Behaviours[behaviour]; bs != nil {
		return bs.LastClusterOp
	}
	return ""
}

// begin marks behaviour as upgrading, or says which upgrade runs.
func (m *Manager) begin(behaviour string, op *Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.host == nil {
		return errors.New("upgrade: the core is not attached yet")
	}
	if _, ok := m.sources[behaviour]; !ok {
		return m.unknownLocked(behaviour)
	}
	if cur, ok := m.running[behaviour]; ok {
		return fmt.Errorf("%w: %s of %q from %s to %s, started %s", ErrBusy, cur.Kind, behaviour, cur.From.Name(), cur.To.Name(), cur.Started.Format(time.RFC3339))
	}
	if op.ClusterOp == "" && m.opts.Member != "" {
		op.ClusterOp = fmt.Sprintf("%s-%s", m.opts.Member, op.Started.Format("20060102T150405.000000000"))
	}
	m.running[behaviour] = op.snapshot()
	return nil
}

func (m *Manager) end(behaviour string) {
	m.mu.Lock()
	delete(m.running, behaviour)
	delete(m.decisions, behaviour)
	m.mu.Unlock()
}

// record appends the history record and logs it.
func (m *Manager) record(ctx context.Context, rec mailbox.UpgradeRecord) mailbox.UpgradeRecord {
	rec.Member = m.opts.Member
	id, err := m.host.AppendHistory(context.WithoutCancel(ctx), rec)
	if err != nil {
		m.log.Error("could not record the upgrade in the history", "behaviour", rec.Behaviour, "err", err)
	}
	rec.ID = id
	if m.opts.OnRecord != nil {
		m.opts.OnRecord(rec)
	}
	attrs := []any{"behaviour", rec.Behaviour, "from", rec.From, "to", rec.To, "outcome", rec.Outcome, "took", rec.Ended.Sub(rec.Started)}
	switch {
	case rec.Kind == string(KindDryRun) && rec.Outcome == "failed":
		m.log.Warn("dry run found actors the new version cannot take", append(attrs, "report", rec.Error)...)
	case rec.Kind == string(KindDryRun) && rec.Outcome == "passed with warnings":
		m.log.Warn("dry run passed with warnings", append(attrs, "report", rec.Error)...)
	case rec.Kind == string(KindDryRun) && rec.Outcome != string(OutcomeRefused):
		if rec.Error != "" {
			attrs = append(attrs, "report", rec.Error) // what the replay found: differences are no failures
		}
		m.log.Info("dry run passed", attrs...)
	case rec.Error != "":
		m.log.Error(rec.Kind+" did not complete", append(attrs, "err", rec.Error)...)
	default:
		m.log.Info(rec.Kind+" completed", attrs...)
	}
	return rec
}
