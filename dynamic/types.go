package dynamic

import (
	"context"
	"log/slog"
	"time"
)

// Config says which plugin to start and how long each step may take.
type Config struct {
	// Path of the plugin binary (the core runs it from its sha256-named
	// cache, so the bytes cannot change under a running upgrade).
	Path string
	// SHA256, hex, pins the binary's content; empty means no pin.
	SHA256 string
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
}

// Info is what a plugin reports about itself after the handshake.
type Info struct {
	Behaviour     string   // behaviour name
	CodeVersion   string   // the behaviour's code version
	SchemaVersion uint32   // state schema version Init and Handle produce
	MigratesFrom  []uint32 // schemas it can migrate up to SchemaVersion
	MigratesTo    []uint32 // schemas it can migrate SchemaVersion down to
	Protocol      int      // negotiated protocol version
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
}

// Batch is a run of messages for one actor, applied in order from State.
type Batch struct {
	Actor    string
	State    State
	Messages []Message
}

// Outgoing is a message a handler sent.
type Outgoing struct {
	To      string
	Payload []byte
}

// Result is one message's outcome. A non-empty Err means the message failed
// alone: no effect, state as before it.
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
}

// BatchResult is a batch's outcome: one Result per message, in order, and
// the state after the batch.
type BatchResult struct {
	Results []Result
	State   State
}
