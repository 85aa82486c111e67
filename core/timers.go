package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// The timer loop. Timers are durable in the store (set and cancelled in
// handlers' commits, or by SendAfter); one goroutine of the core fires
// them: it sleeps until the store's NextTimer, or until kicked by a commit
// that set a timer due before the loop's wake-up time, then calls FireDue
// until nothing is due. A fired timer is an ordinary message, enqueued
// through the store's normal path, whose notification wakes its actor
// (created first if it is virtual). FireDue deletes a timer in the write
// that enqueues its message, so a timer fires exactly once across crashes;
// those that came due while the core was down fire at start, earliest
// first.

const (
	// fireBatch bounds the timers one FireDue write fires.
	fireBatch = 256
	// maxTimerSleep bounds one sleep of the loop, so that a clock that
	// jumps, or a wake-up lost to a race, delays a timer by at most this.
	maxTimerSleep = 30 * time.Second
	// timerBackoffMin and timerBackoffMax bound the wait after the store
	// refused to fire timers (a full disk, say), doubling in between.
	timerBackoffMin = 50 * time.Millisecond
	timerBackoffMax = 5 * time.Second
)

// timerLoop is the state of the core's timer goroutine.
type timerLoop struct {
	kick   chan struct{} // wakes the loop to look at NextTimer again
	wakeAt atomic.Int64  // Unix nanoseconds the loop sleeps until
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has ended; nil if never started
}

func (t *timerLoop) init() {
	t.kick = make(chan struct{}, 1)
	t.wakeAt.Store(math.MinInt64) // awake: no kick needed until it sleeps
}

// startTimers starts the timer loop.
func (c *Core) startTimers() {
	ctx, cancel := context.WithCancel(context.Background())
	c.timers.cancel, c.timers.done = cancel, make(chan struct{})
	go c.runTimers(ctx)
}

// stopTimers stops the timer loop and waits for it (a FireDue in progress
// ends first: its write is atomic either way).
func (c *Core) stopTimers() {
	if c.timers.done == nil {
		return
	}
	c.timers.cancel()
	<-c.timers.done
}

// timerSet tells the loop that a timer due at due was just committed, so
// it wakes if it sleeps past it.
func (c *Core) timerSet(due time.Time) {
	if due.UnixNano() >= c.timers.wakeAt.Load() {
		return
	}
	select {
	case c.timers.kick <- struct{}{}:
	default:
	}
}

// runTimers is the timer loop.
func (c *Core) runTimers(ctx context.Context) {
	defer close(c.timers.done)
	failing := map[string]bool{} // kinds of error logged since the last success
	backoff := time.Duration(0)
	for {
		fired, err := c.fireAllDue(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			if errors.Is(err, mailbox.ErrClosed) {
				return
			}
			if kind := timerErrorKind(err); !failing[kind] {
				failing[kind] = true
				c.log.Error("timers cannot fire; retrying with backoff (they stay pending, nothing is lost)", "err", err)
			}
			backoff = min(max(2*backoff, timerBackoffMin), timerBackoffMax)
			wait = backoff
		} else {
			if len(failing) > 0 {
				c.log.Info("timers fire again")
				clear(failing)
			}
			backoff = 0
			wait = maxTimerSleep
			if next, ok := c.store.NextTimer(); ok {
				wait = min(max(time.Until(next), 0), maxTimerSleep)
			}
			if wait == 0 && fired == 0 {
				wait = time.Millisecond // due, yet nothing fired: never spin
			}
		}
		if !c.sleepTimers(ctx, wait) {
			return
		}
	}
}

// sleepTimers sleeps for wait, or until kicked or ctx ends (false).
func (c *Core) sleepTimers(ctx context.Context, wait time.Duration) bool {
	if wait <= 0 {
		return ctx.Err() == nil
	}
	c.timers.wakeAt.Store(time.Now().Add(wait).UnixNano())
	defer c.timers.wakeAt.Store(math.MinInt64)
	// A timer committed between NextTimer and the store above did not see
	// this wake-up time: look once more before sleeping.
	if next, ok := c.store.NextTimer(); ok && time.Until(next) < wait {
		wait = max(time.Until(next), 0)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-c.timers.kick:
	case <-t.C:
	}
	return true
}

// fireAllDue fires every timer due now, fireBatch at a time, and returns
// how many it fired.
func (c *Core) fireAllDue(ctx context.Context) (int, error) {
	n := 0
	for {
		fired, err := c.store.FireDue(ctx, time.Now(), fireBatch)
		n += len(fired)
		if err != nil {
			return n, fmt.Errorf("fire due timers: %w", err)
		}
		if len(fired) < fireBatch {
			return n, nil
		}
	}
}

// timerErrorKind groups the timer loop's errors, so each kind is logged
// once per outage rather than once per retry.
func timerErrorKind(err error) string {
	for _, k := range []error{mailbox.ErrDiskFull, mailbox.ErrStoreFailed, mailbox.ErrCorrupt, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "other"
}

// scheduler is the part of a store that sets timers from outside any
// actor (SendAfter): owner-less timers, firing like the others. It is
// optional: pebblestore has it (pebblestore.Store.Schedule).
type scheduler interface {
	Schedule(ctx context.Context, t mailbox.TimerRequest) error
	Scheduled(ctx context.Context, to string) ([]mailbox.Timer, error)
	Unschedule(ctx context.Context, to string) (int, error)
}

// ErrNotSupported is returned by SendAfter on a store that cannot set
// timers from outside an actor.
var ErrNotSupported = errors.New("not supported by this store")

// SendAfter schedules payload for actor at due, durably, for the control
// API (`graft send --after`): at due the timer loop delivers it as an
// ordinary message whose TimerID is the returned id (and Sender empty).
// The actor must be registered or virtual (a virtual one is created when
// the message is delivered, not now). Unlike a handler's timer it has no
// owner: Timers lists it under its target, and destroying the target
// removes it (DestroyActor), so an actor made later under the same name
// never receives it. A time in the past is due at once. Each call sets a
// new timer: a client that may retry (its answer lost) uses SendAfterID.
func (c *Core) SendAfter(ctx context.Context, actor string, payload []byte, due time.Time) (timerID string, err error) {
	return c.schedule(ctx, actor, "s:"+newID(), payload, due)
}

// SendAfterID is SendAfter made safe to retry: id, the caller's (at most
// MaxMessageIDSize bytes), names the scheduled send among those to actor,
// and the timer id is derived from the two, so a retry while the first
// is pending sets nothing new and returns the same timer id (the first
// one's payload and due time stand). Once it has fired, the id names no
// pending send and a call with it schedules again. An empty id is
// SendAfter's.
func (c *Core) SendAfterID(ctx context.Context, actor, id string, payload []byte, due time.Time) (timerID string, err error) {
	if id == "" {
		return c.SendAfter(ctx, actor, payload, due)
	}
	if err := CheckMessageID(id); err != nil {
		return "", fmt.Errorf("schedule a send to actor %q: %w", actor, err)
	}
	// The target is part of the id (a name has no NUL byte): the store
	// keeps one namespace for every target's scheduled sends, and the same
	// caller id used for two targets names two sends.
	sum := sha256.Sum256([]byte(actor + "\x00" + id))
	return c.schedule(ctx, actor, "s:"+hex.EncodeToString(sum[:16]), payload, due)
}

// schedule sets the timer of SendAfter and SendAfterID.
func (c *Core) schedule(ctx context.Context, actor, id string, payload []byte, due time.Time) (string, error) {
	if err := c.checkSend(actor, len(payload)); err != nil {
		return "", fmt.Errorf("schedule a send to actor %q: %w", actor, err)
	}
	s, ok := c.store.(scheduler)
	if !ok {
		return "", fmt.Errorf("schedule a send to actor %q: timers set from outside an actor are %w", actor, ErrNotSupported)
	}
	if err := s.Schedule(ctx, mailbox.TimerRequest{ID: id, To: actor, Due: due, Payload: payload}); err != nil {
		return "", fmt.Errorf("schedule a send to actor %q: %w", actor, err)
	}
	c.timerSet(due)
	return id, nil
}

// Timers lists actor's pending timers, in due order, for `graft timers`:
// those it set (Timer.Owner is the actor), and the sends scheduled to it
// from outside with SendAfter (Owner empty). A virtual actor not created
// yet has only the latter.
func (c *Core) Timers(ctx context.Context, actor string) ([]mailbox.Timer, error) {
	out, err := c.store.PendingTimers(ctx, actor)
	if errors.Is(err, mailbox.ErrUnknownActor) {
		if _, virtual := c.virtualBehaviour(actor); virtual {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list the timers of actor %q: %w", actor, err)
	}
	if s, ok := c.store.(scheduler); ok {
		outside, err := s.Scheduled(ctx, actor)
		if err != nil {
			return nil, fmt.Errorf("list the timers of actor %q: %w", actor, err)
		}
		out = append(out, outside...)
		slices.SortStableFunc(out, func(x, y mailbox.Timer) int {
			if c := x.Due.Compare(y.Due); c != 0 {
				return c
			}
			return strings.Compare(x.ID, y.ID)
		})
	}
	return out, nil
}
