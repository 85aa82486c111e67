package mailbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Store is the durable home of every actor's mailbox, state, replies, dead
// letters, timers and the upgrade history. The core talks only to this interface, so
// a backend on a distributed engine (etcd, a PostgreSQL-protocol database)
// can replace the embedded one without touching the core.
//
// It is a composition of small interfaces so that a component can ask for
// only the part it uses (the upgrade machinery needs History and Registry,
// a sender only Queues, the timer loop Timers, an observer only Reader).
type Store interface {
	Reader
	Registry
	Queues
	Timers
	History
	// Close flushes what relaxed durability still holds, releases the
	// store's lock and frees its resources. Calls after Close fail with
	// ErrClosed.
	Close() error
}

// Reader is the read-only part of a Store: what an observer (the control
// API, a status page, a test) may look at. It has no method that changes
// anything, so code that holds only a Reader cannot write to the store:
// the compiler refuses it. The core hands out a Reader (core.Core.Store)
// and keeps writes to its own methods, which uphold its invariants (one
// writer per actor, epochs, notifications). Each method is documented
// where Store gets it: Registry, Queues, Timers or History.
type Reader interface {
	// Actor returns one actor's record (Registry.Actor).
	Actor(ctx context.Context, name string) (Actor, error)
	// Actors lists every actor record, sorted by name (Registry.Actors).
	Actors(ctx context.Context) ([]Actor, error)
	// State returns the actor's committed state (Registry.State).
	State(ctx context.Context, name string) (State, error)
	// Stats returns the actor's queue counters (Registry.Stats).
	Stats(name string) (Stats, error)
	// DeadLetters lists the actor's dead letters, oldest first
	// (Queues.DeadLetters).
	DeadLetters(ctx context.Context, actor string) ([]DeadLetter, error)
	// ListHistory returns every upgrade record, oldest first
	// (History.ListHistory).
	ListHistory(ctx context.Context) ([]UpgradeRecord, error)
	// PendingTimers lists an actor's pending timers, in due order
	// (Timers.PendingTimers).
	PendingTimers(ctx context.Context, owner string) ([]Timer, error)
	// Handled returns the actor's batches kept for dry runs, oldest
	// first: those that hold its last Commit.KeepHandled messages ([]
	// when it keeps none).
	Handled(ctx context.Context, actor string) ([]Handled, error)
	// Read returns up to max of the actor's pending messages after seq
	// after, oldest first, without removing them (Queues.Read).
	Read(ctx context.Context, actor string, after uint64, max int) ([]Message, error)
}

// Registry keeps the actor records: which actors exist, which behaviour
// drives each one, the module and schema version of its committed state,
// and the ownership epoch that fences a stale writer.
type Registry interface {
	// Register creates the actor if it does not exist yet and returns its
	// record. Registering an existing actor with the same behaviour returns
	// it unchanged (so a restarting core can call it for every configured
	// actor); with another behaviour it fails with ErrBehaviourMismatch.
	Register(ctx context.Context, name, behaviour string) (Actor, error)
	// Spawn creates an actor at run time (origin "spawn") and, when
	// req.Init is not nil, enqueues Init as its first message (Sender
	// empty), in one atomic write. Spawning an actor that exists with the
	// same behaviour changes nothing and reports created false; with
	// another behaviour it fails with a *SpawnConflictError.
	Spawn(ctx context.Context, req SpawnRequest) (a Actor, created bool, err error)
	// Actor returns one actor's record.
	Actor(ctx context.Context, name string) (Actor, error)
	// Actors lists every actor record, sorted by name.
	Actors(ctx context.Context) ([]Actor, error)
	// SetStatus records an operator-visible status word ("running",
	// "stopped", ...) for the actor; the store gives it no meaning.
	SetStatus(ctx context.Context, name, status string) error
	// Remove deletes the actor and everything stored for it, in one
	// atomic write: registry record, mailbox, state, replies, idempotency
	// ids, failure counts, dead letters and the timers it owns (timers
	// others set for it stay, and fire as for any unknown actor). Writes to
	// it in progress finish first; every call naming it afterwards fails
	// with ErrUnknownActor, unless it is registered, spawned or (virtual)
	// sent to again, which makes a new, empty actor.
	Remove(ctx context.Context, name string) error
	// Claim makes the caller the actor's only writer: it returns a new
	// ownership epoch for the actor, above every one handed out before for
	// it, in this process or an earlier one. Commits carrying an older
	// epoch fail with ErrFenced, so a stale core (or a stale actor
	// goroutine) can never overwrite a newer owner's work. A store shared
	// by several processes makes it durable; the embedded one, which a
	// file lock gives to one process, keeps it in memory (pebblestore).
	Claim(ctx context.Context, name string) (uint64, error)
	// State returns the actor's committed state (zero State if none yet).
	State(ctx context.Context, name string) (State, error)
	// Stats returns the actor's queue counters without touching disk.
	Stats(name string) (Stats, error)
	// Backlog lists the actors with messages not yet acked (Depth > 0),
	// in no order, without touching disk. A core whose idle actors start
	// passive runs these at start: one call instead of a Stats per actor
	// of a large registry.
	Backlog(ctx context.Context) ([]string, error)
	// Range calls fn with every actor record, in no order, until fn
	// returns false: Actors without the sorted copy of a large registry.
	Range(ctx context.Context, fn func(Actor) bool) error
}

// Queues is the message path: enqueue, read, record failures, commit.
type Queues interface {
	// Enqueue appends msg to the actor's mailbox and returns once it is
	// durable under the store's durability mode. msg.Seq is ignored (the
	// store assigns it). An actor that does not exist but whose name
	// Options.Virtual resolves is created in the same write; any other
	// unknown name fails with ErrUnknownActor. If msg.ID is set and the actor accepted that id
	// within the idempotency window, nothing is enqueued: the receipt
	// carries the original sequence number and, once that message is
	// committed, its stored outcome.
	Enqueue(ctx context.Context, actor string, msg Message) (Receipt, error)
	// Lookup reports what became of the message with this id, without
	// enqueueing anything. It fails with ErrUnknownMessage if the id is not
	// (or no longer) within the idempotency window.
	Lookup(ctx context.Context, actor, id string) (Receipt, error)
	// Read returns up to max pending messages with a sequence number
	// greater than after, in order, without removing them. It sees only the
	// contiguous prefix of committed enqueues, so a message can never
	// appear before one with a lower sequence number.
	Read(ctx context.Context, actor string, after uint64, max int) ([]Message, error)
	// RecordFailure durably counts one failed attempt at handling the
	// message and remembers why; it returns the new attempt count.
	RecordFailure(ctx context.Context, actor string, seq uint64, reason string) (uint32, error)
	// Commit applies every commit in one atomic transaction: acks, states,
	// outgoing messages, replies, dead letters, spawns and timers. A crash
	// leaves all of it or none of it.
	Commit(ctx context.Context, commits ...Commit) error
	// DeadLetters lists the actor's dead-lettered messages, oldest first.
	DeadLetters(ctx context.Context, actor string) ([]DeadLetter, error)
	// Requeue moves a dead letter back into the actor's mailbox as a new
	// message (new sequence number, same id, sender and payload, attempts
	// reset), atomically. A dead letter with DeadLetter.To set (a timer
	// whose target was unknown) goes to that actor instead, created if it
	// is virtual; still unknown, it fails with ErrUnknownActor and nothing
	// changes.
	Requeue(ctx context.Context, actor string, seq uint64) (Receipt, error)
}

// History is the append-only record of upgrades and rollbacks.
type History interface {
	// AppendHistory stores rec and returns the id it was given.
	AppendHistory(ctx context.Context, rec UpgradeRecord) (uint64, error)
	// ListHistory returns every record, oldest first.
	ListHistory(ctx context.Context) ([]UpgradeRecord, error)
}

// Message is one entry of a mailbox.
type Message struct {
	// Seq is the message's position in its mailbox, assigned by the store,
	// strictly increasing per actor and never reused.
	Seq uint64
	// ID is the sender-chosen idempotency id; empty means none.
	ID string
	// Sender names who sent it (an actor name or a client label).
	Sender string
	// Payload is the message body, opaque to the store.
	Payload []byte
	// CallChain lists the actors on the synchronous call path that led to
	// this message, outermost first, so a call that would close a cycle can
	// be refused at once.
	CallChain []string
	// EnqueuedAt is when the store accepted the message.
	EnqueuedAt time.Time
	// Attempts counts the failed attempts recorded by RecordFailure.
	Attempts uint32
	// LastError is the reason given with the last recorded failure.
	LastError string
	// TimerID is set on a message sent by a timer firing (the timer's id),
	// so a handler can tell a timer's message from a send.
	TimerID string `json:",omitempty"`
	// TraceParent is the W3C traceparent of the span that sent the message
	// (an OpenTelemetry trace context), so that handling it continues the
	// sender's trace, on this core or another; "" when the sender did not
	// trace. Opaque to the store, which keeps it with the message.
	TraceParent string `json:",omitempty"`
}

// Receipt tells a sender what the store did with its message.
type Receipt struct {
	// Seq is the message's sequence number (the original one for a
	// duplicate).
	Seq uint64
	// Duplicate is set when the id had been accepted before and nothing was
	// enqueued this time.
	Duplicate bool
	// Outcome says whether the message has been committed yet, and how.
	Outcome Outcome
	// Reply is the committed reply, when Outcome is OutcomeReplied.
	Reply []byte
	// Error is the last error, when Outcome is OutcomeDeadLettered, or
	// the refusal, when it is OutcomeRefused.
	Error string
}

// Outcome is what became of a message that carried an id.
type Outcome uint8

const (
	// OutcomePending means the message is queued and not yet committed.
	OutcomePending Outcome = iota
	// OutcomeApplied means the message was committed without a reply.
	OutcomeApplied
	// OutcomeReplied means the message was committed with a reply.
	OutcomeReplied
	// OutcomeDeadLettered means the message was moved to the dead letters.
	OutcomeDeadLettered
	// OutcomeRefused means the message was committed with a refusal (the
	// handler's terminal error), which Receipt.Error carries.
	OutcomeRefused
)

// String names the outcome for logs and the CLI.
func (o Outcome) String() string {
	switch o {
	case OutcomePending:
		return "pending"
	case OutcomeApplied:
		return "applied"
	case OutcomeReplied:
		return "replied"
	case OutcomeDeadLettered:
		return "dead-lettered"
	case OutcomeRefused:
		return "refused"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// State is an actor's committed state: bytes the core owns, tagged with the
// schema version that reads them and the module version that wrote them.
type State struct {
	// Schema is the state schema version of Data.
	Schema uint32
	// Module is the code version of the module that produced Data.
	Module string
	// Data is the encoded state, opaque to the store.
	Data []byte
}

// Commit is everything one handled batch of one actor changes, applied
// atomically by Queues.Commit.
type Commit struct {
	// Actor is the actor whose batch this is.
	Actor string
	// Epoch must equal the epoch the caller got from Claim.
	Epoch uint64
	// Through acks every message with Seq <= Through; 0 acks nothing (a
	// state-only commit, e.g. a migration).
	Through uint64
	// State, if not nil, replaces the actor's state.
	State *State
	// Outgoing messages are enqueued into other actors' mailboxes in the
	// same transaction.
	Outgoing []Outgoing
	// Replies are stored by message id, for callers and for retries.
	Replies []Reply
	// DeadLetters move these acked messages to the dead-letter area
	// instead of dropping them.
	DeadLetters []DeadLetterRequest
	// Spawns create actors (origin "spawn"), each with its Init message
	// (Sender: this actor) queued before any Outgoing message to it. A
	// spawn of an actor that exists with the same behaviour is a no-op;
	// with another behaviour the whole commit fails with a
	// *SpawnConflictError.
	Spawns []SpawnRequest
	// Timers are set, owned by this actor. An id already pending for it
	// is left as it is.
	Timers []TimerRequest
	// CancelTimers cancel this actor's pending timers by id; an unknown or
	// fired id is a no-op. They apply after Timers, so a timer set and
	// cancelled in one commit is not set. A cancel of a timer that is
	// firing right now waits for the firing: it either fired before the
	// commit or never fires.
	CancelTimers []string
	// Handled, with KeepHandled above 0, keeps this batch for dry runs
	// (mailbox/handled.go) in the same transaction, and drops the batches
	// that hold none of the actor's last KeepHandled messages.
	Handled     *Handled
	KeepHandled int
	// Lazy lets the commit return before it is durable: it becomes durable
	// with the next synced write (the store's log is sequential), and a
	// crash before that loses it whole, never in part. Only for commits
	// whose loss is harmless because they would be redone, such as an
	// upgrade's state migration (the actor's next batch commit, or the
	// upgrade's history record, makes it durable). A Commit call is lazy
	// only if every commit in it is.
	Lazy bool
}

// Outgoing is a message a handler sends to another local actor.
type Outgoing struct {
	// To is the receiving actor.
	To string
	// Message is the message; its Seq is assigned by the store. A non-empty
	// ID is deduplicated in the receiver's mailbox like any send.
	Message Message
}

// Reply is the answer to a call, kept under the call's message id.
type Reply struct {
	// MessageID is the id of the message being answered.
	MessageID string
	// Payload is the reply body.
	Payload []byte
	// Refusal, if not empty, is the handler's terminal error: the message
	// was applied, and its caller (and any retry with the same id) gets
	// this error instead of Payload.
	Refusal string
}

// DeadLetterRequest names a message of the committed batch that is moved to
// the dead letters, with the reason.
type DeadLetterRequest struct {
	// Seq is the message's sequence number; it must be <= Commit.Through.
	Seq uint64
	// Error is why the message could not be handled.
	Error string
}

// DeadLetter is a message that could not be handled, kept with everything
// needed to understand and retry it.
type DeadLetter struct {
	// Message is the original message, with its attempts and last error.
	Message Message
	// DeadAt is when it was dead-lettered.
	DeadAt time.Time
	// To, when set, is the actor the message was meant for: it is a
	// timer's message whose target was neither registered nor virtual when
	// it fired, kept in its owner's dead letters.
	To string
}

// Actor is an actor's registry record.
type Actor struct {
	// Name is the actor's unique name.
	Name string
	// Behaviour names the behaviour that handles its messages.
	Behaviour string
	// Status is the last status word set with SetStatus.
	Status string
	// Module is the module version of its committed state ("" before the
	// first commit).
	Module string
	// Schema is the state schema version of its committed state.
	Schema uint32
	// Epoch is the current ownership epoch.
	Epoch uint64
	// CreatedAt is when the actor was registered.
	CreatedAt time.Time
	// Origin says how it came to exist: OriginConfig (Register),
	// OriginVirtual or OriginSpawn.
	Origin string
}

// Stats are an actor's queue counters, cheap enough to poll.
type Stats struct {
	// Acked is the ack watermark: every message up to it is committed.
	Acked uint64
	// Last is the highest sequence number readers can see.
	Last uint64
	// Depth is how many messages wait to be committed.
	Depth uint64
	// DeadLetters is how many messages sit in the dead-letter area.
	DeadLetters uint64
}

// UpgradeRecord is one upgrade or rollback of a behaviour.
type UpgradeRecord struct {
	// ID is assigned by AppendHistory, increasing.
	ID uint64
	// Behaviour is the behaviour upgraded.
	Behaviour string
	// From and To are module versions.
	From, To string
	// Kind is "upgrade" or "rollback".
	Kind string
	// Started and Ended bound the upgrade.
	Started, Ended time.Time
	// Outcome is "completed", "rolled back", "abandoned", ...
	Outcome string
	// Error says why, when the upgrade did not complete.
	Error string
	// Steps are the per-actor steps with their durations.
	Steps []UpgradeStep
	// Canary, for a canary upgrade, says its share and bake and what
	// decided it ("10% for 1m0s: promoted: every gate passed (...)").
	Canary string `json:",omitempty"`
	// Actors, for an op whose Steps name no actor (a dry run), is how
	// many actors it covered.
	Actors int `json:",omitempty"`
	// Member, in a cluster, is the member whose share of the op this is:
	// every member moves and records its own actors.
	Member string `json:",omitempty"`
	// ClusterOp, in a cluster, names the op this record is a share of.
	// The member where the op starts gives it, and the members that follow
	// take it from the op's announcement (package rollout), so the history
	// can show the cluster's op as one.
	ClusterOp string `json:",omitempty"`
}

// UpgradeStep is one timed step of an upgrade, for one actor.
type UpgradeStep struct {
	// Actor is the actor the step applied to ("" for behaviour-wide steps).
	Actor string
	// Step names it: "load" (Actor "") or "pause" (see upgrade.Step).
	Step string
	// Duration is how long it took.
	Duration time.Duration
	// Drain is the part of a pause spent waiting for the actor's batch in
	// flight to commit (it was still serving then); the rest is the
	// upgrade's own: migrate, commit, resume.
	Drain time.Duration `json:",omitempty"`
}

// Durability says when a write counts as done.
type Durability uint8

const (
	// DurabilitySync fsyncs before a send or commit returns: nothing
	// acknowledged is lost, even to a machine crash.
	DurabilitySync Durability = iota
	// DurabilityRelaxed hands the write to the operating system before
	// returning and fsyncs on a short interval: a kill -9 of the core loses
	// nothing, a machine crash can lose the last interval.
	DurabilityRelaxed
)

// String returns the config spelling of the mode.
func (d Durability) String() string {
	switch d {
	case DurabilitySync:
		return "sync"
	case DurabilityRelaxed:
		return "relaxed"
	}
	return fmt.Sprintf("durability(%d)", uint8(d))
}

// ParseDurability reads the config spelling of a durability mode.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "", "sync":
		return DurabilitySync, nil
	case "relaxed":
		return DurabilityRelaxed, nil
	}
	return 0, fmt.Errorf("durability %q: must be \"sync\" or \"relaxed\"", s)
}

// Defaults for Options fields left zero.
const (
	DefaultMaxMessageSize    = 1 << 20
	DefaultIdempotencyWindow = 100_000
	DefaultSyncInterval      = 50 * time.Millisecond
)

// Options configure a store; the zero value is the safe default (sync
// durability, 1 MiB messages, a 100,000-message idempotency window).
type Options struct {
	// Durability is DurabilitySync (default) or DurabilityRelaxed.
	Durability Durability
	// SyncInterval is how often relaxed mode fsyncs (default 50 ms).
	SyncInterval time.Duration
	// MaxMessageSize bounds a payload in bytes (default 1 MiB).
	MaxMessageSize int
	// IdempotencyWindow is how many of an actor's most recent messages
	// keep their id remembered for deduplication (default 100,000).
	IdempotencyWindow uint64
	// Notify, if set, is called after new messages become readable in an
	// actor's mailbox, with the highest readable sequence number. It runs on
	// the writer's goroutine and must not block.
	Notify func(actor string, last uint64)
	// Logger receives the store's and the engine's logs (default: discard).
	Logger *slog.Logger
	// Virtual, if set, says which names are virtual actors and of which
	// behaviour ("account/alice" -> "account", true). A message to such a
	// name that is not registered (an Enqueue, a commit's Outgoing, a
	// Requeue, a fired timer) creates the actor (origin "virtual") in the
	// same write as the message, so the first send costs one write.
	// Concurrent first sends create it once. It must be fast, pure and
	// must not call the store.
	Virtual func(name string) (behaviour string, ok bool)
	// Created, if set, is called after a write that created actors (a
	// virtual first send or a spawn) is durable, once per actor, so the
	// core can start supervising them. It runs on the writer's goroutine,
	// outside the store's locks and after the call's own work is done.
	Created func(name, behaviour string)
}

// WithDefaults returns o with zero fields replaced by their defaults.
func (o Options) WithDefaults() Options {
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
