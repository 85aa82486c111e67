package mailbox

import (
	"context"
	"time"
)

// Timers is the durable timer service. A handler sets and cancels timers
// in its Commit (Commit.Timers, Commit.CancelTimers), so they are part of
// its exactly-once effect; the core's timer loop sleeps until NextTimer and
// calls FireDue, which turns each due timer into an ordinary message in one
// atomic write. A timer therefore fires exactly once: a crash leaves it
// either pending or fired (its message queued), never both, never twice.
type Timers interface {
	// PendingTimers lists the owner's timers that have not fired, in due
	// order (ties by id). It fails with ErrUnknownActor for an actor that
	// does not exist.
	PendingTimers(ctx context.Context, owner string) ([]Timer, error)
	// NextTimer returns the earliest due time of a pending timer, from
	// memory, so the timer loop can sleep until then without touching the
	// disk; false if no timer is pending (or the store is closed). A commit
	// that sets an earlier timer does not wake anyone: the core, which made
	// that commit, asks again.
	NextTimer() (time.Time, bool)
	// FireDue fires up to max timers due at or before now, earliest first:
	// in one atomic write it deletes each one and enqueues its message
	// (Sender: the owner; TimerID: the timer's id) into its target's
	// mailbox, creating a virtual target (Options.Virtual) on the way. A
	// timer whose target is neither registered nor virtual is
	// dead-lettered in its owner's dead letters instead, with an error
	// naming the target (DeadLetter.To; Requeue then sends it to the
	// target, once that exists). It returns the timers it fired, those
	// included, in due order; none if nothing is due. Concurrent calls are
	// serialized, so a timer is never fired twice. If the write fails,
	// nothing fired and the timers stay pending. A timer whose record
	// cannot be read is not fired and does not hold up the others: the
	// call fires the rest and returns them together with a *CorruptError
	// naming it, once (not at every call).
	FireDue(ctx context.Context, now time.Time, max int) ([]Timer, error)
}

// TimerRequest sets a timer in a Commit. The committing actor owns it.
type TimerRequest struct {
	// ID names the timer among its owner's timers. Setting an id that is
	// already pending for the owner changes nothing (the first one wins),
	// so a redelivered batch that sets the same deterministic ids sets
	// each timer once.
	ID string
	// To is the actor that receives the message when the timer fires; it
	// need not exist yet (see Timers.FireDue).
	To string
	// Due is when it fires; a time in the past fires at the next FireDue.
	Due time.Time
	// Payload is the body of the message it sends.
	Payload []byte
}

// Timer is a pending (or just fired) timer.
type Timer struct {
	// ID is the timer's id, unique among its owner's pending timers.
	ID string
	// Owner is the actor that set it; the fired message's Sender.
	Owner string
	// To is the actor that receives its message.
	To string
	// Due is when it fires.
	Due time.Time
	// Payload is the body of its message.
	Payload []byte
}

// SpawnRequest creates an actor at run time: with Registry.Spawn from
// outside (the control API), or in a Commit (Commit.Spawns) from a handler,
// where it is part of the handler's exactly-once effect.
type SpawnRequest struct {
	// Name is the new actor's name.
	Name string
	// Behaviour names the behaviour that drives it.
	Behaviour string
	// Init, when not nil, is enqueued as the actor's first message, in the
	// same write that creates it (Sender: the spawning actor; empty from
	// outside). A spawn of an existing actor enqueues nothing.
	Init []byte
}

// Origins of an actor (Actor.Origin): how it came to exist.
const (
	// OriginConfig is an actor registered with Register, from the config.
	OriginConfig = "config"
	// OriginVirtual is an actor created by the first message sent to a
	// name that Options.Virtual resolves.
	OriginVirtual = "virtual"
	// OriginSpawn is an actor created by a SpawnRequest.
	OriginSpawn = "spawn"
)
