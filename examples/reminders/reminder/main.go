// Command reminder is the "reminder" behaviour of graft's reminders
// example: periodic work done with a durable timer, by actors made at run
// time.
//
// The behaviour is declared virtual in the config (virtual: true, see
// ../graft.yaml), so it owns every actor name reminder/KEY: the first
// message to reminder/alice creates that actor, in the same write that
// stores the message, and no actor is listed anywhere. Each actor is one
// reminder: a text, a period, and a count of the times it fired.
//
// It shows how periodic work is written against the public SDK alone: a
// handler sets a timer with ctx.SendAfter, which graft commits together
// with the new state (so the timer exists if and only if the message's
// effect does, and survives a crash of the core), and each tick re-arms
// the next one. The state keeps the pending tick's id, for two reasons:
// "stop" cancels it by id, and a tick that was already on its way when a
// "stop" or a new "every" committed (cancelling a timer that fired does
// nothing) is recognised as stale and ignored, so there is never more than
// one chain of ticks. A redelivered message derives the same timer id, so
// it sets the same timer again rather than a second one.
//
// # Messages
//
// A reminder actor understands JSON objects, routed by their "kind":
//
//	{"kind":"every","seconds":2,"text":"stand up"}  remind every 2 s (0.1 to 604800, fractions allowed);
//	                                                replaces the running reminder, keeps the count
//	{"kind":"stop"}                                 cancel the pending tick; the count stays
//	{"kind":"status"}                               reply the status (a call)
//	{"kind":"tick"}                                 sent by the reminder's own timer: count it, re-arm
//
// "every", "stop" and "status" reply the status, which is the state:
//
//	{"text":"stand up","seconds":2,"count":3,"timer":"t:reminder/alice:7:1"}
//
// count is how many ticks fired, across stops, upgrades and restarts of
// the core; timer is the id of the pending tick, as `graft timers
// reminder/alice` lists it, and "" once stopped. A real reminder would also
// ctx.Send its text to whoever it reminds, in the same commit as the tick.
package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
)

// The bounds of a period, in seconds: a typo must neither flood the store
// with ticks nor set a reminder nobody will see.
const (
	minSeconds = 0.1
	maxSeconds = 7 * 24 * 3600
)

// tickPayload is the message each timer delivers.
var tickPayload = []byte(`{"kind":"tick"}`)

// state is a reminder actor's state, schema 1; it is also the status.
type state struct {
	Text    string  `json:"text"`    // what to remind of
	Seconds float64 `json:"seconds"` // the period
	Count   int     `json:"count"`   // ticks fired so far
	Timer   string  `json:"timer"`   // id of the pending tick, "" when stopped
}

// everyRequest is the body of an "every" message.
type everyRequest struct {
	Seconds float64 `json:"seconds"`
	Text    string  `json:"text"`
}

func main() { sdk.Run("reminder", "1.0.0", behaviour()) }

// behaviour routes a reminder's messages by kind. Actors start from the
// zero state: no text, no pending tick, a count of 0.
func behaviour() *sdk.Router[state] {
	return sdk.Routes[state]().
		On("every", sdk.JSON(every)).
		On("tick", tick).
		On("stop", func(ctx *sdk.Context, s state, _ sdk.Message) (state, error) {
			ctx.CancelTimer(s.Timer) // a no-op for "" or a tick that has fired
			s.Timer = ""
			return s, replyStatus(ctx, s)
		}).
		On("status", func(ctx *sdk.Context, s state, _ sdk.Message) (state, error) {
			return s, replyStatus(ctx, s)
		})
}

// every starts the reminder, or replaces the running one: the pending tick
// is cancelled and a new one set with the new period.
func every(ctx *sdk.Context, s state, req everyRequest) (state, error) {
	if req.Seconds < minSeconds || req.Seconds > maxSeconds {
		return s, sdk.Refuse("reminder %s: \"seconds\" is %v: want %v to %v", ctx.Actor(), req.Seconds, minSeconds, maxSeconds)
	}
	if strings.TrimSpace(req.Text) == "" {
		return s, sdk.Refuse("reminder %s: \"text\" is empty: say what to remind of", ctx.Actor())
	}
	ctx.CancelTimer(s.Timer)
	s.Text, s.Seconds = req.Text, req.Seconds
	s.Timer = arm(ctx, s)
	return s, replyStatus(ctx, s)
}

// tick is one firing of the reminder's timer: count it and set the next
// one. A tick that is not the pending one (the reminder was stopped or
// replaced after it fired, or it was scheduled from outside) is ignored.
func tick(ctx *sdk.Context, s state, _ sdk.Message) (state, error) {
	if ctx.TimerID() == "" {
		return s, sdk.Refuse("reminder %s: a tick comes from the reminder's own timer, not from %q", ctx.Actor(), ctx.Sender())
	}
	if ctx.TimerID() != s.Timer {
		return s, nil // stale
	}
	s.Count++
	s.Timer = arm(ctx, s)
	return s, nil
}

// arm sets the timer of the next tick, due one period after this message
// commits, and returns its id.
func arm(ctx *sdk.Context, s state) string {
	return ctx.SendAfter(time.Duration(s.Seconds*float64(time.Second)), ctx.Actor(), tickPayload)
}

// replyStatus answers the message with the state as JSON.
func replyStatus(ctx *sdk.Context, s state) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("reminder %s: encode the status: %w", ctx.Actor(), err)
	}
	ctx.Reply(b)
	return nil
}
