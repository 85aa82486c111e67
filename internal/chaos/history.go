package chaos

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// SendOp is one send of the load generator. Its payload is
// "<Sender>:<N>" and its idempotency id is the same string, so a send whose
// answer was lost (the core was killed) is retried with the same id and the
// checker can tell from an actor's applied list who sent what, in which
// order.
type SendOp struct {
	Actor  string
	Sender string
	N      int
	// Acked is set once the core acknowledged the send (possibly on a
	// retry). An unacknowledged send may have been applied or not, but at
	// most once and in order.
	Acked bool
}

// Payload is the send's payload and id.
func (s SendOp) Payload() string { return s.Sender + ":" + strconv.Itoa(s.N) }

// PoisonOp is a message that crashes its behaviour every time: it must end
// in its actor's dead letters and nowhere else.
type PoisonOp struct {
	Actor   string
	Payload string
	Acked   bool
}

// CallOp is one call on the register actor, for the linearizability check.
// Call and Return are nanoseconds since the history began; a call whose
// outcome stayed unknown (the harness gave up retrying) has Known false and
// is treated by the checker as pending until the end of time.
type CallOp struct {
	Client int
	// Put is "put Value" (the reply is the previous value); otherwise "get"
	// (the reply is the value).
	Put    bool
	Value  string
	Output string
	Known  bool
	Call   int64
	Return int64
}

// History records everything the load did, from many goroutines. It is the
// input of Check, together with the final state read from the store.
type History struct {
	start time.Time

	mu     sync.Mutex
	sends  []SendOp
	poison []PoisonOp
	calls  []CallOp
	run    runtimeOps // timers, cancels, spawns and destroys (history_timers.go)
}

// NewHistory starts an empty history; call times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock (monotonic nanoseconds since NewHistory).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// AddSend records a send once its outcome is settled (acked, or given up).
func (h *History) AddSend(op SendOp) {
	h.mu.Lock()
	h.sends = append(h.sends, op)
	h.mu.Unlock()
}

// poisonAcked counts the poison messages acknowledged so far.
func (h *History) poisonAcked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.poison {
		if p.Acked {
			n++
		}
	}
	return n
}

// AddPoison records a poison message.
func (h *History) AddPoison(op PoisonOp) {
	h.mu.Lock()
	h.poison = append(h.poison, op)
	h.mu.Unlock()
}

// AddCall records a finished (or abandoned) call on the register.
func (h *History) AddCall(op CallOp) {
	h.mu.Lock()
	h.calls = append(h.calls, op)
	h.mu.Unlock()
}

// Counts reports how many sends and calls were acknowledged so far, for the
// progress line.
func (h *History) Counts() (sends, calls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sends), len(h.calls)
}

// snapshot copies the recorded operations.
func (h *History) snapshot() ([]SendOp, []PoisonOp, []CallOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]SendOp(nil), h.sends...), append([]PoisonOp(nil), h.poison...), append([]CallOp(nil), h.calls...)
}

// parseEntry splits an applied payload "<sender>:<n>" into its parts.
func parseEntry(p string) (sender string, n int, ok bool) {
	i := strings.LastIndexByte(p, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(p[i+1:])
	if err != nil {
		return "", 0, false
	}
	return p[:i], n, true
}

// ActorVersion is what the store says about one actor after the core
// stopped: its registry record's version and the version tag of its
// committed state, and the versions its behaviour can run.
type ActorVersion struct {
	Actor        string
	RecordModule string
	RecordSchema uint32
	StateModule  string
	StateSchema  uint32
	// HasState is false when the actor never committed a state.
	HasState bool
	// DecodeErr is set when the state does not decode under its schema.
	DecodeErr string
	// Allowed maps each code version of the behaviour to its schema.
	Allowed map[string]uint32
}

// problem checks one actor's version invariants.
func (v ActorVersion) problem() string {
	if !v.HasState {
		if v.RecordModule != "" {
			return fmt.Sprintf("actor %s: record says module %s but no state is committed", v.Actor, v.RecordModule)
		}
		return ""
	}
	want, ok := v.Allowed[v.StateModule]
	switch {
	case !ok:
		return fmt.Sprintf("actor %s: state committed by unknown module version %q", v.Actor, v.StateModule)
	case want != v.StateSchema:
		return fmt.Sprintf("actor %s: state of module %s tagged schema %d, want %d", v.Actor, v.StateModule, v.StateSchema, want)
	case v.RecordModule != v.StateModule || v.RecordSchema != v.StateSchema:
		return fmt.Sprintf("actor %s: runs %s/schema %d but its committed state is %s/schema %d",
			v.Actor, v.RecordModule, v.RecordSchema, v.StateModule, v.StateSchema)
	case v.DecodeErr != "":
		return fmt.Sprintf("actor %s: state does not decode as schema %d: %s", v.Actor, v.StateSchema, v.DecodeErr)
	}
	return ""
}

// Final is the end state of a run, read from the store after the core
// stopped, plus what the harness observed of processes and files.
type Final struct {
	// Applied lists, per actor, the payloads its committed state applied.
	Applied map[string][]string
	// DeadLetters lists, per actor, the payloads in its dead-letter area.
	DeadLetters map[string][]string
	// Pending counts, per actor, messages still queued when the core stopped.
	Pending map[string]uint64
	// Versions are the version facts of every actor.
	Versions []ActorVersion
	// Leaks describes each leaked process, socket file or descriptor.
	Leaks []string
	// Runtime is what the store holds of the timer behaviour's actors and
	// of the actors made at run time (history_timers.go).
	Runtime RuntimeFinal
	// Upgrades is the store's upgrade history (for the canaries' check).
	Upgrades []mailbox.UpgradeRecord
}
