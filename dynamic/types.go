package dynamic

import (
	"context"
	"log/slog"
	"math"
	"time"
)

// Config says which plugin to start and how long each step may take.
type Config struct {
	// Path of the plugin binary (the core runs it from its sha256-named
	// cache, so the bytes cannot change under a running upgrade).
	Path string
	// SHA256, hex, pins the binary's content; empty means no pin.
	SHA256 string
	// Pins, if set, remembers binaries already hashed, so that a start of
	// one unchanged since is not hashed again (see Pins); nil hashes at
	// every start.
	Pins *Pins
	// Behaviour is the behaviour name the plugin must report; empty
	// accepts any.
	Behaviour string
	// StartTimeout bounds Start: exec, handshake and Info. Default 10s.
	StartTimeout time.Duration
	// Limits are the sizes the module's traffic must fit (defaults
	// DefaultMaxStateSize, DefaultMaxMessageSize, DefaultMaxBatchBytes).
	Limits Limits
	// CallTimeout bounds each call a handler makes (sdk.Context.Call); the
	// handler then gets sdk.ErrCallTimeout while it still has time to
	// answer its batch. Default HandleTimeout/2.
	CallTimeout time.Duration
	// HandleTimeout is how long a batch may go unanswered before the
	// module is declared hung and killed. Default 30s.
	HandleTimeout time.Duration
	// StopTimeout bounds Stop when its context has no deadline. Default 5s.
	StopTimeout time.Duration
	// Logger receives lifecycle events and the plugin's output (rate-
	// limited). Default slog.Default().
	Logger *slog.Logger
	// OutputRate and OutputBurst limit logged plugin output lines per
	// second. Defaults 100 and 200.
	OutputRate, OutputBurst float64
	// Caller, if set, serves synchronous calls made by handlers
	// (sdk.Context.Call). Nil: such calls fail with "no call service".
	Caller Caller
	// SocketDir is where per-generation socket directories are created
	// (default os.TempDir()); each is removed when the process ends.
	SocketDir string
	// Env is the plugin's environment beyond PATH, HOME, LANG and TZ
	// (which it gets from the host): "KEY=value", or "KEY" to pass the
	// host's KEY on. Nothing else of the host's environment reaches it.
	Env []string
	// Resources limit the module's process tree (its cgroup); zero values
	// mean no limit. See Resources.
	Resources Resources
	// Containment says how the module's process tree is kept together;
	// the default, ContainAuto, uses a cgroup where there is one.
	Containment Containment
}

// Caller serves calls a handler makes to another actor and waits for. The
// core implements it; it must answer within ctx.
type Caller interface {
	Call(ctx context.Context, req CallRequest) (reply []byte, err error)
}

// CallRequest is a synchronous call from a handler.
type CallRequest struct {
	From, To    string
	Payload     []byte
	ID          string   // derived from the calling message: stable across redeliveries
	CallerChain []string // calling actors, outermost first, ending with From
	TraceParent string   // the calling message's TraceParent: the call continues its trace
}

// Info is what a plugin reports about itself after the handshake.
type Info struct {
	Behaviour     string   // behaviour name
	CodeVersion   string   // the behaviour's code version
	SchemaVersion uint32   // state schema version Init and Handle produce
	MigratesFrom  []uint32 // schemas it can migrate up to SchemaVersion
	MigratesTo    []uint32 // schemas it can migrate SchemaVersion down to
	Protocol      int      // negotiated protocol version
	// InitInHandle: the plugin runs Init itself for a Batch with Init set
	// (SDK v0.2.0 and later), so a new actor needs no Init call of its own.
	InitInHandle bool
}

// CanMigrate says whether the plugin can migrate state from schema `from`
// to schema `to` (the check the upgrade makes before pausing any actor).
func (i Info) CanMigrate(from, to uint32) bool {
	switch {
	case from == to:
		return true
	case to == i.SchemaVersion:
		return contains(i.MigratesFrom, from)
	case from == i.SchemaVersion:
		return contains(i.MigratesTo, to)
	}
	return false
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// State is an actor's state: bytes tagged with their schema version.
type State struct {
	Schema uint32
	Data   []byte
}

// Message is one mailbox entry to handle.
type Message struct {
	Seq       uint64
	ID        string
	Sender    string
	Payload   []byte
	Attempt   uint32
	CallChain []string
	// TimerID is the id of the timer that delivered the message (the
	// TimerSet.ID it was set with), "" for any other message. The plugin
	// hands it to the handler (sdk.Message.TimerID).
	TimerID string
	// TraceParent is the W3C traceparent of the core's span for handling
	// the message ("" when the core does not trace). The plugin hands it to
	// the handler, and back with each call the handler makes.
	TraceParent string
}

// Batch is a run of messages for one actor, applied in order from State.
type Batch struct {
	Actor    string
	State    State
	Messages []Message
	// Init: the actor has no state yet; the plugin runs Init and applies
	// the messages from the state it made (State is ignored). Only for a
	// plugin whose Info has InitInHandle; an Init failure is ErrInitFailed.
	Init bool
}

// Outgoing is a message a handler sent.
type Outgoing struct {
	To      string
	Payload []byte
}

// Result is one message's outcome. A non-empty Err means the message failed
// alone: no effect, state as before it.
//
// Timers, CancelTimers and Spawns are effects like Outgoing: a failure has
// none, a refusal commits them, and the core commits them with the
// message's state, exactly once. The results of a batch take effect in
// message order; within one Result, CancelTimers apply before Timers. The
// host has checked them (see checkResponse): every timer and spawn names
// an actor (and a behaviour), every id is non-empty and at most
// wire.MaxTimerID bytes, no timer id is set twice in the batch nor set and
// cancelled by one message, payloads fit the message limit, and there are
// at most wire.MaxTimersPerMessage timers, wire.MaxCancelsPerMessage
// cancels and wire.MaxSpawnsPerMessage spawns.
type Result struct {
	// Err is a failure: the message has no effect and is retried.
	Err string
	// Refusal is a terminal error: the message is applied (its state and
	// sends commit) and the caller gets Refusal instead of a reply.
	Refusal      string
	Outgoing     []Outgoing
	Reply        []byte
	HasReply     bool
	StateChanged bool
	// Timers are the durable timers the handler set.
	Timers []TimerSet
	// CancelTimers are ids of timers to cancel. They name timers the
	// handling actor set: an id that is unknown, already fired or
	// another actor's timer is a no-op (the store scopes cancels to the
	// actor).
	CancelTimers []string
	// Spawns are the actors the handler asked to create.
	Spawns []Spawn
}

// TimerSet is a durable timer a handler set (sdk.Context.SendAfter or
// SendAt). When it comes due, Payload is delivered to actor To (which may
// be a virtual actor not yet created) as a message whose TimerID is ID.
//
// Exactly one of After and At is meaningful: At is the zero time for a
// relative timer, whose After is a delay counted from the commit that sets
// it (zero or negative: due at once); an absolute timer has At set (never
// the zero time: it comes from Unix nanoseconds) and After zero. Due
// computes the due time either way.
//
// ID is opaque, non-empty, at most wire.MaxTimerID bytes. The SDK derives
// it from the actor, the handled message's seq and the timer's place in
// the handler, so a batch redelivered before it committed sets timers with
// the same ids: a store keeps one timer per id (setting a pending id again
// replaces it) and, since ids embed mailbox positions, drops an actor's
// timers when it drops its mailbox (destroy).
type TimerSet struct {
	ID, To  string
	Payload []byte
	After   time.Duration
	At      time.Time
}

// Due is when t comes due for a commit at now: At for an absolute timer,
// now+After (never before now, saturating rather than overflowing) for a
// relative one.
func (t TimerSet) Due(now time.Time) time.Time {
	if !t.At.IsZero() {
		return t.At
	}
	if t.After <= 0 {
		return now
	}
	due := now.Add(t.After)
	if due.Before(now) { // overflow
		return time.Unix(0, math.MaxInt64)
	}
	return due
}

// Spawn is an actor a handler asked to create (sdk.Context.Spawn): Name,
// running Behaviour (both non-empty). An actor of that name and behaviour
// that exists already makes it a no-op (Init is not delivered again); one
// of another behaviour fails the message, which the core reports as its
// failure. A non-empty Init is delivered to the new actor as its first
// message, from the spawning actor (the SDK documents it so to handlers).
type Spawn struct {
	Name, Behaviour string
	Init            []byte
}

// BatchResult is a batch's outcome: one Result per message, in order, and
// the state after the batch.
type BatchResult struct {
	Results []Result
	State   State
}
