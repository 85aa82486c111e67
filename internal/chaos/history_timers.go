package chaos

import (
	"fmt"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// TimerOp is one timer the harness asked an actor of the "ctm" behaviour
// to set from its handler ("arm", see testdata/ctm). Its Tag is unique in
// the run and travels in the timer's payload, so a fire is attributed to
// its op even when the reply that carried the timer id was lost.
type TimerOp struct {
	Tag   string
	Owner string // the actor whose handler set it
	To    string // the actor its message goes to
	// After is the delay of a SendAfter timer; At (Unix ns) the due time
	// of a SendAt one (then After is zero).
	After time.Duration
	At    int64
	// Links is how many more timers the chain re-arms after this one (the
	// periodic pattern: each fire sets the next, Gap after it), 0 for a
	// single timer. Chains are set on the owner itself.
	Links int
	Gap   time.Duration
	// Sent is the wall clock (Unix ns) just before the first attempt.
	Sent int64
	// Acked says the arm command's reply came back: the timer is committed.
	// ID is the timer id and SetAt the handler's clock (Unix ns) when it
	// set the timer, both from the reply; AckAt is when the reply came.
	Acked bool
	ID    string
	SetAt int64
	AckAt int64
}

// command is the "arm" payload of the op.
func (t TimerOp) command() string {
	mode, when := "after", t.After.Milliseconds()
	if t.At != 0 {
		mode, when = "at", t.At
	}
	return fmt.Sprintf("arm %s %s %s %d %d %d", t.Tag, t.To, mode, when, t.Gap.Milliseconds(), t.Links)
}

// earliestDue is the earliest time (Unix ns) the timer can have come due:
// a SendAfter timer's delay counts from its commit, which follows the
// handler's run (SetAt) and the first attempt (Sent).
func (t TimerOp) earliestDue() int64 {
	switch {
	case t.At != 0:
		return t.At
	case t.Acked:
		return t.SetAt + int64(t.After)
	}
	return t.Sent + int64(t.After)
}

// CancelOp is a "cancel" command for a committed timer, sent to its owner.
type CancelOp struct {
	Tag   string
	Owner string
	ID    string
	Acked bool
	AckAt int64 // Unix ns
}

// SpawnOp is one actor of behaviour "ctm" made at run time: by a handler's
// ctx.Spawn (By names the spawning actor) or from outside through the
// control API (By empty). Either way its first message is "init Name".
type SpawnOp struct {
	Name  string
	By    string
	Acked bool
}

// DestroyOp is a destroy of a spawned actor through the control API.
// Missing is set when the very first attempt found no such actor, which for
// an acknowledged spawn means the spawn was lost.
type DestroyOp struct {
	Name    string
	Acked   bool
	AckAt   int64 // Unix ns
	Missing bool
}

// runtimeOps are the History's records of timers, cancels, spawns and
// destroys (guarded by History.mu).
type runtimeOps struct {
	timers   []TimerOp
	cancels  []CancelOp
	spawns   []SpawnOp
	destroys []DestroyOp
	kills    []int64 // Unix ns of each kill -9 of the core
}

// AddTimer records an arm command once its outcome is settled.
func (h *History) AddTimer(op TimerOp) {
	h.mu.Lock()
	h.run.timers = append(h.run.timers, op)
	h.mu.Unlock()
}

// AddCancel records a cancel command once its outcome is settled.
func (h *History) AddCancel(op CancelOp) {
	h.mu.Lock()
	h.run.cancels = append(h.run.cancels, op)
	h.mu.Unlock()
}

// AddSpawn records a spawn once its outcome is settled.
func (h *History) AddSpawn(op SpawnOp) {
	h.mu.Lock()
	h.run.spawns = append(h.run.spawns, op)
	h.mu.Unlock()
}

// AddDestroy records a destroy once its outcome is settled.
func (h *History) AddDestroy(op DestroyOp) {
	h.mu.Lock()
	h.run.destroys = append(h.run.destroys, op)
	h.mu.Unlock()
}

// AddKill records a kill -9 of the core at kill (Unix ns), so the check
// can tell which timers were pending across one.
func (h *History) AddKill(kill int64) {
	h.mu.Lock()
	h.run.kills = append(h.run.kills, kill)
	h.mu.Unlock()
}

// runtimeSnapshot copies the recorded timer and spawn operations.
func (h *History) runtimeSnapshot() runtimeOps {
	h.mu.Lock()
	defer h.mu.Unlock()
	return runtimeOps{
		timers:   append([]TimerOp(nil), h.run.timers...),
		cancels:  append([]CancelOp(nil), h.run.cancels...),
		spawns:   append([]SpawnOp(nil), h.run.spawns...),
		destroys: append([]DestroyOp(nil), h.run.destroys...),
		kills:    append([]int64(nil), h.run.kills...),
	}
}

// Fire is one timer message an actor of "ctm" applied, read from its
// committed state: the timer's tag and link number (0 for the armed timer,
// n for the n-th re-arm of a chain), the TimerID the message carried, its
// sender (the timer's owner) and the handler's clock when it applied it.
// Index is its place in the actor's list, which is its mailbox order.
type Fire struct {
	Actor string `json:"-"`
	Index int    `json:"-"`
	Tag   string `json:"tag"`
	N     int    `json:"n"`
	ID    string `json:"id"`
	From  string `json:"from"`
	At    int64  `json:"at"`
}

// RegistryEntry is one actor of the store's registry after the run.
type RegistryEntry struct {
	Behaviour string
	Origin    string
}

// RuntimeFinal is what the store holds after the run of the "ctm" actors
// and of the registry.
type RuntimeFinal struct {
	// Configured are the actors of the config.
	Configured []string
	// Registry is every actor of the store's registry, by name.
	Registry map[string]RegistryEntry
	// Fires are the timer messages applied by every "ctm" actor.
	Fires []Fire
	// Inits lists, per "ctm" actor, the init messages it applied.
	Inits map[string][]string
	// Pending are the timers still pending in the store.
	Pending []mailbox.Timer
}
