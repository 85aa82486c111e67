package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// Timer is a durable timer a handler set with Context.SendAfter or SendAt.
// When it comes due the core delivers Payload to actor To as an ordinary
// message whose TimerID is ID. It is set in the same commit as the rest of
// the handler's effects (dropped if the handler fails), survives a crash
// of the core or the plugin, and fires exactly once.
//
// Exactly one of After and At says when: At is the zero time for a timer
// set with SendAfter, whose After is a delay counted from the commit (the
// host turns it into a due time then); a timer set with SendAt has At set
// and After zero.
type Timer struct {
	ID      string
	To      string
	Payload []byte
	After   time.Duration
	At      time.Time
}

// Spawn is an actor a handler asked the core to create with Context.Spawn.
type Spawn struct {
	Name      string
	Behaviour string
	Init      []byte
}

// SendAfter sets a durable timer: after delay, payload is delivered to
// actor `to` (which may be a virtual actor not yet created) as a message
// whose TimerID is the id returned. The delay is counted from the commit of
// the current message, not from this call; zero or negative means due at
// once. Like Send, the timer exists only if the handler succeeds (or
// refuses), and a redelivered message sets the same timer again, with the
// same id, rather than a second one.
//
// Timer ids are opaque: compare them, store them (to CancelTimer later),
// but do not parse them; their form may change. They are derived from the
// actor, the handled message's seq and the timer's position among those the
// handler sets, which is what makes them stable across redeliveries.
// Timers are for Handle only: setting one in Init fails the Init.
func (c *Context) SendAfter(delay time.Duration, to string, payload []byte) string {
	return c.setTimer(Timer{To: to, Payload: payload, After: max(delay, 0)}, "SendAfter")
}

// SendAt is SendAfter with an absolute due time (a time in the past is due
// at once). It is carried as nanoseconds since the Unix epoch (clamped to
// the years 1678 to 2262, which that can hold), so the time zone and the
// monotonic clock reading of at play no part.
func (c *Context) SendAt(at time.Time, to string, payload []byte) string {
	return c.setTimer(Timer{To: to, Payload: payload, At: time.Unix(0, unixNanos(at))}, "SendAt")
}

// CancelTimer cancels a timer this actor set, by the id SendAfter or SendAt
// returned, in the same commit as the handler's other effects. A timer set
// earlier in the same handler is simply not set. Cancelling an id that is
// unknown, already fired or another actor's is a no-op.
func (c *Context) CancelTimer(id string) {
	if c.msg == nil {
		c.misused("CancelTimer")
		return
	}
	if i := slices.IndexFunc(c.timers, func(t Timer) bool { return t.ID == id }); i >= 0 {
		c.timers = slices.Delete(c.timers, i, i+1)
		return
	}
	if id == "" || len(id) > wire.MaxTimerID || slices.Contains(c.cancels, id) {
		return // names no timer, or cancelled already
	}
	c.cancels = append(c.cancels, id)
}

// Spawn asks the core to create actor `name` running behaviour, in the same
// commit as the handler's other effects, so it happens exactly once even
// when the message is redelivered (and not at all if the handler fails).
// The new actor starts from its behaviour's Init; a non-empty init is then
// delivered to it as its first message, from this actor. Spawning a name
// that exists with the same behaviour is a no-op (init is not delivered
// again); one that exists with another behaviour fails the message, with
// the core's error. Spawns are for Handle only: one in Init fails the Init.
func (c *Context) Spawn(name, behaviour string, init []byte) {
	if c.msg == nil {
		c.misused("Spawn")
		return
	}
	c.spawns = append(c.spawns, Spawn{Name: name, Behaviour: behaviour, Init: init})
}

// TimerID is the id of the timer that delivered the message being handled,
// "" for any other message (and in Init).
func (c *Context) TimerID() string { return c.Message().TimerID }

// setTimer records t with the next id of the handled message.
func (c *Context) setTimer(t Timer, what string) string {
	if c.msg == nil {
		c.misused(what)
		return ""
	}
	c.timerN++
	t.ID = timerID(c.actor, c.msg.Seq, c.timerN)
	c.timers = append(c.timers, t)
	return t.ID
}

// timerID is "t:" + actor + ":" + seq + ":" + n, the actor replaced by its
// sha256 when longer than maxCallKey bytes (so an id is at most about 160
// bytes, within wire.MaxTimerID). The last two fields are numbers, so the
// id is unambiguous whatever the actor's name holds. The seq is the handled
// message's place in the actor's mailbox, which a redelivery keeps, and n
// counts the timers set while handling it, from 1.
func timerID(actor string, seq uint64, n int) string {
	if len(actor) > maxCallKey {
		sum := sha256.Sum256([]byte(actor))
		actor = "sha256:" + hex.EncodeToString(sum[:])
	}
	return "t:" + actor + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.Itoa(n)
}

// unixNanos is at in nanoseconds since the Unix epoch, clamped to what an
// int64 holds (time.UnixNano is undefined outside it).
func unixNanos(at time.Time) int64 {
	switch {
	case at.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case at.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return at.UnixNano()
}

// checkDeferred fails a handler whose timers, cancels or spawns the core
// would refuse as malformed: too many of them (see wire's bounds), or a
// timer or spawn that names no actor or behaviour, or one name spawned
// with two behaviours.
func (c *Context) checkDeferred() error {
	switch {
	case len(c.timers) > wire.MaxTimersPerMessage:
		return fmt.Errorf("the handler set %d timers, over the limit of %d per message", len(c.timers), wire.MaxTimersPerMessage)
	case len(c.cancels) > wire.MaxCancelsPerMessage:
		return fmt.Errorf("the handler cancelled %d timers, over the limit of %d per message", len(c.cancels), wire.MaxCancelsPerMessage)
	case len(c.spawns) > wire.MaxSpawnsPerMessage:
		return fmt.Errorf("the handler spawned %d actors, over the limit of %d per message", len(c.spawns), wire.MaxSpawnsPerMessage)
	}
	for _, t := range c.timers {
		if t.To == "" {
			return fmt.Errorf("timer %s names no actor to deliver to", t.ID)
		}
	}
	seen := make(map[string]string, len(c.spawns))
	for _, s := range c.spawns {
		if s.Name == "" || s.Behaviour == "" {
			return fmt.Errorf("Spawn(%q, %q) needs an actor name and a behaviour", s.Name, s.Behaviour)
		}
		if b, ok := seen[s.Name]; ok && b != s.Behaviour {
			return fmt.Errorf("the handler spawns actor %q twice, with behaviours %q and %q", s.Name, b, s.Behaviour)
		}
		seen[s.Name] = s.Behaviour
	}
	return nil
}

// misused notes that Init called what, which only Handle may call.
func (c *Context) misused(what string) {
	if !slices.Contains(c.misuse, what) {
		c.misuse = append(c.misuse, what)
	}
}

// checkInit fails an Init that set or cancelled a timer or spawned an
// actor: Init commits only the state, so they would be lost silently.
func (c *Context) checkInit() error {
	if len(c.misuse) == 0 {
		return nil
	}
	return fmt.Errorf("graft/sdk: %s in Init: timers and spawns are only allowed in Handle (Init commits only the state)",
		strings.Join(c.misuse, ", "))
}
