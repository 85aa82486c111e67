package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// Config is everything a Core needs; host builds it from the YAML config
// (config.Config.Core), and an embedding program may build it by hand.
type Config struct {
	// OpenStore opens the durable store (the Core owns it and closes it).
	// opts carries the core's hooks, which the store must get unchanged:
	// Notify (a new message wakes its actor), Virtual (which names are
	// virtual actors) and Created (an actor made at run time is
	// supervised). The opener sets the rest (durability, sizes, logger).
	OpenStore func(opts mailbox.Options) (mailbox.Store, error)
	// Behaviours by behaviour name.
	Behaviours map[string]BehaviourConfig
	// Actors, in start order (an actor also waits for its Requires). The
	// core keeps using the slice: do not change it after New.
	Actors []ActorConfig
	// Supervision of the actors (the root supervisor).
	Supervision SupervisionConfig
	// BatchSize bounds how many messages one Handle carries (default 64).
	BatchSize int
	// MaxAttempts is how often a message may fail before it is
	// dead-lettered (default 5).
	MaxAttempts int
	// MaxMessageSize bounds payloads and replies (default 1 MiB); keep it
	// equal to the store's.
	MaxMessageSize int
	// MaxStateSize bounds an actor's encoded state (default 4 MiB): a
	// result whose state is larger fails that message and commits nothing.
	MaxStateSize int
	// MaxBatchBytes bounds the payload bytes of one batch (default 4 MiB;
	// a message over it travels alone), so that a run of large messages
	// cannot make a batch the transport cannot carry.
	MaxBatchBytes int
	// SocketDir holds the plugins' per-generation socket folders.
	SocketDir string
	// Logger receives the core's logs (default slog.Default()).
	Logger *slog.Logger
	// Observer receives events for metrics (default: none).
	Observer Observer
	// Tracing, if not nil, traces every send, call and handled message with
	// OpenTelemetry (tracing.go); nil traces nothing.
	Tracing trace.TracerProvider
	// Modules picks the binary each actor runs from its committed state
	// (default: every actor runs its behaviour's configured binary).
	Modules ModuleSelector
	// HeldDeadLetters are actors whose failing messages are held from
	// the start, as UpgradeHooks.HoldDeadLetters holds them: the group of
	// a canary the last core was killed in (upgrade.Manager.Prepare).
	HeldDeadLetters []string
	// Placement, when set, says which of the store's actors this core
	// runs: several cores share one store (a cluster), and each runs
	// the actors it owns (placement.go). Nil: this core runs them all.
	Placement Placement
}

// ModuleSelector picks the binary an actor runs, from its committed state.
// During and after an upgrade, actors of one behaviour may be on different
// versions, and after a restart each must run a binary that can read the
// state it committed. The upgrade package implements it.
type ModuleSelector interface {
	// Binary returns the path and sha256 (hex, may be "") to run for an
	// actor of behaviour whose committed state is st (zero for a new one).
	Binary(behaviour string, st mailbox.State) (path, sha256 string)
}

// BehaviourConfig says how to run a behaviour's plugin.
type BehaviourConfig struct {
	// Binary is the plugin binary to run.
	Binary string
	// SHA256 optionally pins the binary's content (hex).
	SHA256 string
	// StartTimeout, HandleTimeout, StopTimeout bound a module's start, one
	// batch, and its stop (defaults 10s, 30s, 5s).
	StartTimeout, HandleTimeout, StopTimeout time.Duration
	// Env is the plugin's environment beyond PATH, HOME, LANG and TZ:
	// "KEY=value", or "KEY" to pass the core's own KEY on. Nothing else of
	// the core's environment reaches a plugin.
	Env []string
	// Resources limit each module process tree of the behaviour (memory,
	// tasks, CPU weight), through its cgroup; zero means no limit.
	Resources dynamic.Resources
	// Virtual makes the behaviour own every actor name "BEHAVIOUR/KEY"
	// (KEY not empty): the first send or call to such a name creates the
	// actor, in the same write as the message, so an actor per account or
	// per order costs nothing until it is used. Its name must not
	// contain "/".
	Virtual bool
	// PassivateAfter, when set, keeps an actor of the behaviour in memory
	// only while it works: once it has been idle that long it leaves its
	// supervisor and memory (its state stays in the store), and its next
	// message, timer or operator action brings it back (passivation.go).
	// Zero keeps every actor in memory. Actors that require others, or
	// that others require, are never passivated.
	PassivateAfter time.Duration
	// VerifyWindow, above 0, keeps each actor's last VerifyWindow handled
	// messages, with the state before them and what this version
	// produced, in the store with each commit (mailbox.Handled), so that a
	// dry run can replay them on a new version and compare.
	VerifyWindow int
}

// ActorConfig declares one actor.
type ActorConfig struct {
	// Name is unique.
	Name string
	// Behaviour names an entry of Config.Behaviours.
	Behaviour string
	// Requires lists actors that must be running before this one starts.
	Requires []string
	// Restart is permanent (default), transient or temporary.
	Restart supervisor.RestartType
	// OwnProcess gives the actor a module process of its own instead of
	// sharing its behaviour's.
	OwnProcess bool
}

// SupervisionConfig is the root supervisor's OTP settings.
type SupervisionConfig struct {
	Strategy    supervisor.Strategy
	MaxRestarts int
	Period      time.Duration
	BackoffMin  time.Duration
	BackoffMax  time.Duration
}

// Core runs actors: it owns the store, the module pools, the supervisor of
// the actors and the Calls waiting for replies. Its methods are the
// runtime's API, each safe on its own; the hooks of the upgrade protocol
// are on UpgradeHooks (Upgrades), apart, because they are safe only in
// that protocol's order (see the package doc).
type Core struct {
	cfg   Config
	log   *slog.Logger
	trace *tracer // nil when not tracing
	// pins remembers the plugin binaries already hashed against their
	// pins, so a restart or an upgrade does not hash one again.
	pins    *dynamic.Pins
	store   mailbox.Store
	waiters waiters
	sup     *supervisor.Supervisor

	// configured holds the actors of the config by name; it never
	// changes after New (requirements are looked up in it).
	configured map[string]*ActorConfig // into cfg.Actors
	timers     timerLoop               // timers.go
	held       heldSet                 // canaries' held dead letters (held.go)

	mu     sync.RWMutex
	actors map[string]*actor // the running incarnation of each actor
	// specs are the actors the core supervises: the configured ones and
	// those made at run time (spawned, virtual), less the destroyed ones.
	// They are pointers (into cfg.Actors for the configured ones): with
	// a million actors, a copy of each spec per map is most of the core's
	// memory.
	specs map[string]*ActorConfig
	// asleep holds the passive actors (passivation.go): supervised, in
	// specs, but no child of their supervisor and not in memory. The
	// value is true once a wake of it is under way.
	asleep map[string]bool
	// halfReleased are the actors whose release to another core of the
	// cluster timed out halfway (placement.go).
	halfReleased map[string]bool
	// required holds the names some configured actor requires; it never
	// changes after New.
	required map[string]bool
	sweeper  sweeper                // passivation.go
	pools    map[string]*modulePool // shared pools by behaviour
	// downMigrations holds one token while a state is moved down, and
	// guards down, the module they run on (movedown.go).
	downMigrations chan struct{}
	down           *downModule
	subs           map[string]*supervisor.Supervisor // behaviour supervisors
	closed         bool
	quit           chan struct{}  // closed by Shutdown: background retries end
	bg             sync.WaitGroup // goroutines adding run-time actors (spawn.go)
	// names serializes the changes of one name's membership in specs
	// and the supervisors: adopt, addListed, DestroyActor (membership.go).
	names nameLocks
}

// Errors the Core's callers branch on.
var (
	// ErrNoReply is returned by Call when the handler did not reply.
	ErrNoReply = errors.New("the handler did not reply")
	// ErrCallCycle is returned to a handler whose synchronous call would
	// close a cycle of callers.
	ErrCallCycle = errors.New("call cycle")
	// ErrDeadLettered is returned by Call when its message was
	// dead-lettered after failing max_attempts times.
	ErrDeadLettered = errors.New("the message was dead-lettered")
	// ErrShutdown is returned by calls on a core that is shutting down.
	ErrShutdown = errors.New("graft core is shutting down")
	// ErrDestroyed is returned to the Calls that waited on an actor when
	// it is destroyed (DestroyActor): their messages are gone with it.
	ErrDestroyed = errors.New("the actor was destroyed")
	// ErrUnknownBehaviour is wrapped by Spawn's error for a behaviour the
	// config does not declare, so the control API can answer 400 with the
	// config's fix rather than a conflict.
	ErrUnknownBehaviour = errors.New("unknown behaviour")
)

// New validates cfg, opens the store and registers the configured actors;
// nothing runs until Start.
func New(cfg Config) (*Core, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = mailbox.DefaultMaxMessageSize
	}
	if cfg.MaxStateSize <= 0 {
		cfg.MaxStateSize = dynamic.DefaultMaxStateSize
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = dynamic.DefaultMaxBatchBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	c := &Core{
		cfg: cfg, log: cfg.Logger, configured: make(map[string]*ActorConfig, len(cfg.Actors)),
		actors: make(map[string]*actor), specs: make(map[string]*ActorConfig, len(cfg.Actors)),
		asleep: make(map[string]bool), halfReleased: make(map[string]bool), required: make(map[string]bool), quit: make(chan struct{}),
		pools: make(map[string]*modulePool), subs: make(map[string]*supervisor.Supervisor), downMigrations: make(chan struct{}, 1),
		trace: newTracer(cfg.Tracing), pins: dynamic.NewPins(),
	}
	c.held.set(cfg.HeldDeadLetters, true)
	c.timers.init()
	store, err := cfg.OpenStore(mailbox.Options{Notify: c.notify, Virtual: c.virtualBehaviour, Created: c.created})
	if err != nil {
		return nil, err
	}
	c.store = store
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range c.cfg.Actors {
		a := &c.cfg.Actors[i]
		if _, err := store.Register(ctx, a.Name, a.Behaviour); err != nil {
			store.Close()
			return nil, fmt.Errorf("register actor %q: %w", a.Name, err)
		}
		c.configured[a.Name] = a
		for _, r := range a.Requires {
			c.required[r] = true
		}
		c.mu.Lock()
		c.specs[a.Name] = a
		c.mu.Unlock()
	}
	if err := c.loadRuntimeActors(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return c, nil
}

// validate reports every problem of cfg at once.
func validate(cfg Config) error {
	var errs []error
	if cfg.OpenStore == nil {
		errs = append(errs, errors.New("no store: Config.OpenStore is nil"))
	}
	seen := make(map[string]bool, len(cfg.Actors))
	for i, a := range cfg.Actors {
		if err := mailbox.CheckActorName(a.Name); err != nil {
			errs = append(errs, fmt.Errorf("actors[%d]: %w", i, err))
			continue
		}
		if seen[a.Name] {
			errs = append(errs, fmt.Errorf("actors[%d]: actor %q is declared twice", i, a.Name))
		}
		seen[a.Name] = true
		if _, ok := cfg.Behaviours[a.Behaviour]; !ok {
			errs = append(errs, fmt.Errorf("actor %q: unknown behaviour %q (declare it under behaviours)", a.Name, a.Behaviour))
		}
	}
	for _, a := range cfg.Actors {
		for _, r := range a.Requires {
			if !seen[r] {
				errs = append(errs, fmt.Errorf("actor %q requires unknown actor %q", a.Name, r))
			}
		}
	}
	if cycle := RequirementCycle(cfg.Actors); cycle != nil {
		errs = append(errs, fmt.Errorf("requirement cycle: %s (an actor cannot wait for itself)", strings.Join(cycle, " -> ")))
	}
	for name, b := range cfg.Behaviours {
		if b.Binary == "" {
			errs = append(errs, fmt.Errorf("behaviour %q: no binary", name))
		}
	}
	errs = append(errs, checkVirtual(cfg)...)
	return errors.Join(errs...)
}

// notify is the store's new-message hook: kick the actor, or wake it
// when it is passive.
func (c *Core) notify(name string, _ uint64) {
	c.mu.RLock()
	a := c.actors[name]
	queued, asleep := c.asleep[name]
	c.mu.RUnlock()
	switch {
	case a != nil:
		a.kick()
	case asleep && !queued:
		c.wakeLater(name)
	}
}

// moduleConfig is the dynamic.Config of behaviour b.
func (c *Core) moduleConfig(behaviour string) dynamic.Config {
	b := c.cfg.Behaviours[behaviour]
	return dynamic.Config{
		Path: b.Binary, SHA256: b.SHA256, Pins: c.pins, Behaviour: behaviour,
		StartTimeout: b.StartTimeout, HandleTimeout: b.HandleTimeout, StopTimeout: b.StopTimeout,
		Logger: c.log, Caller: handlerCalls{c}, SocketDir: c.cfg.SocketDir, Env: b.Env, Resources: b.Resources,
		Limits: dynamic.Limits{MaxStateSize: c.cfg.MaxStateSize, MaxMessageSize: c.cfg.MaxMessageSize, MaxBatchBytes: c.cfg.MaxBatchBytes},
	}
}

func (c *Core) startTimeout(behaviour string) time.Duration {
	if d := c.cfg.Behaviours[behaviour].StartTimeout; d > 0 {
		return d
	}
	return 10 * time.Second
}

func (c *Core) handleTimeout(behaviour string) time.Duration {
	if d := c.cfg.Behaviours[behaviour].HandleTimeout; d > 0 {
		return d
	}
	return 30 * time.Second
}

func (c *Core) stopTimeout(behaviour string) time.Duration {
	if d := c.cfg.Behaviours[behaviour].StopTimeout; d > 0 {
		return d
	}
	return 5 * time.Second
}

// sharedPool returns the shared module pool running binary for behaviour,
// or nil once the core is shutting down.
func (c *Core) sharedPool(behaviour, binary, sha256 string) *modulePool {
	key := behaviour + "\x00" + binary
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil // shutting down: no new module processes
	}
	p := c.pools[key]
	if p == nil {
		cfg := c.moduleConfig(behaviour)
		cfg.Path, cfg.SHA256 = binary, sha256
		p = newModulePool(behaviour, cfg, c.log)
		p.onStart = func(restart bool) { c.cfg.Observer.ModuleStarted(behaviour, restart) }
		c.pools[key] = p
	}
	return p
}

// binaryFor picks the binary an actor runs for its committed state.
func (c *Core) binaryFor(behaviour string, st mailbox.State) (string, string) {
	if c.cfg.Modules != nil {
		if path, sha := c.cfg.Modules.Binary(behaviour, st); path != "" {
			return path, sha
		}
	}
	b := c.cfg.Behaviours[behaviour]
	return b.Binary, b.SHA256
}

// startActor is an actor's supervisor start function: claim the actor,
// load its committed state, make sure its module runs, and let it process
// what is queued. Everything it creates is released if it fails.
func (c *Core) startActor(ctx context.Context, spec ActorConfig) (supervisor.Child, error) {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return nil, ErrShutdown
	}
	if !c.owns(spec.Name) {
		return nil, fmt.Errorf("start actor %q: %w (%s runs it)", spec.Name, ErrNotOwned, c.cfg.Placement.OwnerOf(spec.Name))
	}
	var pool *modulePool
	fail := func(err error) (supervisor.Child, error) {
		if spec.OwnProcess && pool != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), c.stopTimeout(spec.Behaviour))
			_ = pool.close(stopCtx)
			cancel()
		}
		return nil, fmt.Errorf("start actor %q: %w", spec.Name, err)
	}
	if len(spec.Requires) > 0 { // no deadline's timer for the many that have none
		wctx, cancel := context.WithTimeout(ctx, c.startTimeout(spec.Behaviour))
		err := c.waitRequired(wctx, spec)
		cancel()
		if err != nil {
			return fail(err)
		}
	}
	epoch, err := c.store.Claim(ctx, spec.Name)
	if err != nil {
		return fail(err)
	}
	st, err := c.store.State(ctx, spec.Name)
	if err != nil {
		return fail(err)
	}
	st = normalState(st) // a reset state runs Init (see state.go)
	binary, sha := c.binaryFor(spec.Behaviour, st)
	if spec.OwnProcess {
		cfg := c.moduleConfig(spec.Behaviour)
		cfg.Path, cfg.SHA256 = binary, sha
		pool = c.privatePool(spec, cfg)
	} else if pool = c.sharedPool(spec.Behaviour, binary, sha); pool == nil {
		return fail(ErrShutdown)
	}
	actx, cancel := context.WithCancel(context.Background())
	a := &actor{
		core: c, spec: spec, ctx: actx, cancel: cancel,
		pool: pool, private: spec.OwnProcess, state: st, epoch: epoch,
		batchMax: c.cfg.BatchSize, done: make(chan struct{}), started: time.Now(),
	}
	a.lastWork.Store(a.started.UnixNano())
	// Registered before its module is fetched, so UnloadModule sees the
	// pool in use and cannot close it under the starting actor.
	c.mu.Lock()
	c.actors[spec.Name] = a
	c.mu.Unlock()
	inst, err := pool.get(ctx)
	if err == nil {
		err = readable(spec.Name, st, inst.Info())
	}
	if errors.Is(err, ErrStateUnreadable) {
		// Written by a newer version: a rollback caught it on a member
		// that had not rolled back yet (movedown.go).
		down, derr := c.migrateDown(ctx, spec, epoch, st, inst.Info())
		if derr == nil {
			a.mu.Lock()
			a.state, err = down, nil
			a.mu.Unlock()
		} else if !errors.Is(derr, ErrNoStateWriter) {
			err = fmt.Errorf("%w; moving it down with the version that wrote it failed: %w", err, derr)
		}
	}
	if err != nil {
		c.forget(a)
		cancel()
		return fail(err)
	}
	a.lastWork.Store(time.Now().UnixNano()) // idle from its start, not its creation
	a.ready.Store(true)
	a.kick()
	return a, nil
}

// privatePool is a module pool for one actor with a process of its own.
func (c *Core) privatePool(spec ActorConfig, cfg dynamic.Config) *modulePool {
	p := newModulePool(spec.Behaviour+"/"+spec.Name, cfg, c.log)
	p.onStart = func(restart bool) { c.cfg.Observer.ModuleStarted(spec.Behaviour, restart) }
	return p
}

// forget drops a finished actor from the routing table.
func (c *Core) forget(a *actor) {
	c.mu.Lock()
	if c.actors[a.spec.Name] == a {
		delete(c.actors, a.spec.Name)
	}
	c.mu.Unlock()
}

// checkSend says whether the store would accept a message to actor `to`:
// a registered actor, or a virtual one (created by the message).
func (c *Core) checkSend(to string, size int) error {
	if size > c.cfg.MaxMessageSize {
		return &mailbox.TooLargeError{Actor: to, Size: size, Limit: c.cfg.MaxMessageSize}
	}
	_, err := c.store.Stats(to)
	if errors.Is(err, mailbox.ErrUnknownActor) {
		if _, ok := c.virtualBehaviour(to); ok {
			return nil
		}
	}
	return err
}

// delivered tells the Calls waiting on a committed batch what became of
// their messages.
func (c *Core) delivered(actor string, msgs []mailbox.Message, results []dynamic.Result) {
	if !c.waiters.any() {
		return
	}
	for i, m := range msgs {
		if m.ID != "" {
			c.waiters.deliver(actor, m.ID, callResult{reply: results[i].Reply, hasReply: results[i].HasReply, refusal: results[i].Refusal})
		}
	}
}

// RefusedError is what Call returns when the handler refused the request
// with a terminal error (sdk.Terminal): the message was applied, its state
// and sends committed, and Reason is the handler's text. A retry with the
// same id gets the same RefusedError.
type RefusedError struct {
	Actor, ID string
	Reason    string
}

// Error names the actor and the id, then the reason.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("actor %q refused message %q: %s", e.Actor, e.ID, e.Reason)
}

// SendOptions qualify a Send or Call.
type SendOptions struct {
	// ID makes the send idempotent: a retry with the same ID is not
	// enqueued again. Call generates one when empty.
	ID string
	// Sender names the sender (default "client").
	Sender string
}

// Send enqueues payload for actor durably and returns its receipt. A name
// a virtual behaviour owns ("account/alice") needs no actor yet: the store
// creates it in the same write as the message, and the core starts it; any
// other unknown name is refused with mailbox.ErrUnknownActor.
func (c *Core) Send(ctx context.Context, actor string, payload []byte, opts SendOptions) (mailbox.Receipt, error) {
	if err := CheckMessageID(opts.ID); err != nil {
		return mailbox.Receipt{}, err
	}
	if opts.Sender == "" {
		opts.Sender = "client"
	}
	ctx, span := c.trace.startClient(ctx, "graft.send", actor, trace.SpanKindProducer)
	r, err := c.store.Enqueue(ctx, actor, mailbox.Message{ID: opts.ID, Sender: opts.Sender, Payload: payload, TraceParent: TraceParent(span.SpanContext())})
	if err != nil {
		err = fmt.Errorf("send to actor %q: %w", actor, err)
	}
	endSpan(span, err)
	return r, err
}

// Call sends payload to actor and waits for the handler's reply until ctx
// ends. A retry with the same opts.ID returns the committed reply without
// applying the message again. A caller that gives up leaves nothing behind:
// the message stays queued and is applied once; its reply is kept by id.
// Like Send it creates a virtual actor by its first message; if the actor
// is destroyed while the call waits, it fails with ErrDestroyed.
func (c *Core) Call(ctx context.Context, actor string, payload []byte, opts SendOptions) ([]byte, error) {
	if err := CheckMessageID(opts.ID); err != nil {
		return nil, err
	}
	return c.call(ctx, actor, payload, opts, nil)
}

func (c *Core) call(ctx context.Context, actor string, payload []byte, opts SendOptions, chain []string) (_ []byte, err error) {
	ctx, span := c.trace.startClient(ctx, "graft.call", actor, trace.SpanKindClient)
	defer func() { endSpan(span, err) }()
	if opts.ID == "" {
		opts.ID = newID()
	}
	if opts.Sender == "" {
		opts.Sender = "client"
	}
	if len(payload) > c.cfg.MaxMessageSize {
		return nil, fmt.Errorf("call actor %q: %w", actor, &mailbox.TooLargeError{Actor: actor, Size: len(payload), Limit: c.cfg.MaxMessageSize})
	}
	ch, remove := c.waiters.add(actor, opts.ID)
	defer remove()
	r, err := c.store.Enqueue(ctx, actor, mailbox.Message{ID: opts.ID, Sender: opts.Sender, Payload: payload, CallChain: chain, TraceParent: TraceParent(span.SpanContext())})
	if err != nil {
		return nil, fmt.Errorf("call actor %q: %w", actor, err)
	}
	if r.Outcome != mailbox.OutcomePending {
		return receiptReply(actor, opts.ID, r)
	}
	var remote chan remoteOutcome // another core of the cluster commits the reply
	if c.cfg.Placement != nil {
		remote = make(chan remoteOutcome, 1)
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			r, err := c.pollOutcome(pctx, actor, opts.ID)
			remote <- remoteOutcome{r, err}
		}()
	}
	select {
	case o := <-remote:
		switch {
		case errors.Is(o.err, mailbox.ErrUnknownMessage):
			return nil, fmt.Errorf("call actor %q (id %q): %w", actor, opts.ID, ErrDestroyed)
		case o.err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("call actor %q (id %q): no reply yet (the message is queued; retry with the same id to get its reply): %w", actor, opts.ID, ctx.Err())
		case o.err != nil:
			return nil, fmt.Errorf("call actor %q (id %q): waiting for the reply: %w", actor, opts.ID, o.err)
		}
		return receiptReply(actor, opts.ID, o.r)
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		if res.refusal != "" {
			return nil, &RefusedError{Actor: actor, ID: opts.ID, Reason: res.refusal}
		}
		if !res.hasReply {
			return nil, fmt.Errorf("call actor %q (id %q): %w", actor, opts.ID, ErrNoReply)
		}
		return res.reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("call actor %q (id %q): no reply yet (the message is queued; retry with the same id to get its reply): %w", actor, opts.ID, ctx.Err())
	}
}

// remoteOutcome is what waiting for a reply another core commits found.
type remoteOutcome struct {
	r   mailbox.Receipt
	err error
}

// receiptReply is what a call returns for a committed message's receipt.
func receiptReply(actor, id string, r mailbox.Receipt) ([]byte, error) {
	switch r.Outcome {
	case mailbox.OutcomeReplied:
		return r.Reply, nil
	case mailbox.OutcomeDeadLettered:
		return nil, fmt.Errorf("call actor %q (id %q): %w: %s", actor, id, ErrDeadLettered, r.Error)
	case mailbox.OutcomeRefused:
		return nil, &RefusedError{Actor: actor, ID: id, Reason: r.Error}
	}
	return nil, fmt.Errorf("call actor %q (id %q): %w", actor, id, ErrNoReply)
}

// handlerCalls serves the synchronous calls handlers make (sdk
// Context.Call) through go-plugin's broker.
type handlerCalls struct{ c *Core }

// Call implements dynamic.Caller. A call that would close a cycle of
// callers fails at once with the cycle named, instead of deadlocking.
func (h handlerCalls) Call(ctx context.Context, req dynamic.CallRequest) ([]byte, error) {
	if i := slices.Index(req.CallerChain, req.To); i >= 0 {
		cycle := append(slices.Clone(req.CallerChain[i:]), req.To)
		return nil, fmt.Errorf("%w: %s: %w", ErrCallCycle, strings.Join(cycle, " -> "), dynamic.ErrCallCycle)
	}
	reply, err := h.c.call(h.c.trace.callContext(ctx, req), req.To, req.Payload, SendOptions{ID: req.ID, Sender: req.From}, req.CallerChain)
	return reply, callKind(err)
}

// callKind marks a failed call with the kind the plugin side matches on
// (dynamic's call errors), keeping its text.
func callKind(err error) error {
	var re *RefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return &dynamic.RefusedError{Reason: re.Reason}
	case errors.Is(err, mailbox.ErrUnknownActor), errors.Is(err, mailbox.ErrEmptyActorName), errors.Is(err, mailbox.ErrInvalidName):
		return fmt.Errorf("%w (%w)", err, dynamic.ErrCallUnknown)
	case errors.Is(err, mailbox.ErrTooLarge):
		return fmt.Errorf("%w (%w)", err, dynamic.ErrCallTooLarge)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (%w)", err, dynamic.ErrCallTimeout)
	case errors.Is(err, ErrDeadLettered):
		return fmt.Errorf("%w (%w)", err, dynamic.ErrCallDeadLetter)
	case errors.Is(err, ErrNoReply):
		return fmt.Errorf("%w (%w)", err, dynamic.ErrCallNoReply)
	}
	return err
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
