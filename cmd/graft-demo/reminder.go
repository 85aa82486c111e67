package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/graft-host/graft/core/control"
)

// reminder is the demo's virtual actor, of examples/reminders: no config
// lists it, its first message makes it.
const reminder = "reminder/demo"

// reminderStatus is the part of the reminder's status reply the demo reads.
type reminderStatus struct {
	Count int    `json:"count"`
	Timer string `json:"timer"` // the pending tick, "" once stopped
}

// reminderStatusOf decodes a reminder's reply.
func reminderStatusOf(raw []byte, err error) (reminderStatus, error) {
	var s reminderStatus
	if err != nil {
		return s, fmt.Errorf("call %s: %w", reminder, err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("the status of %s: %w", reminder, err)
	}
	return s, nil
}

// startReminder makes reminder/demo by its first message, which sets a
// durable timer that re-arms itself on each tick, once a second.
func startReminder(call func(string, string) ([]byte, error)) error {
	s, err := reminderStatusOf(call(reminder, `{"kind":"every","seconds":1,"text":"stand up"}`))
	if err != nil {
		return err
	}
	say("%s (a virtual actor, made by this first message) ticks once a second: a durable timer, re-armed on each tick (pending: %s)", reminder, s.Timer)
	return nil
}

// stopReminder schedules the reminder's stop one second away, as
// `graft send reminder/demo '{"kind":"stop"}' --after 1s` does, lists the
// pending timers as `graft timers` does, and waits for the stop to be
// handled. It returns the reminder's last status.
func stopReminder(ctx context.Context, exited <-chan error, c *control.Client, call func(string, string) ([]byte, error)) (reminderStatus, error) {
	after := 1.0
	r, err := c.Send(ctx, reminder, control.SendRequest{Text: `{"kind":"stop"}`, AfterSeconds: &after})
	if err != nil {
		return reminderStatus{}, fmt.Errorf("schedule the stop of %s: %w", reminder, err)
	}
	say("graft send %s '{\"kind\":\"stop\"}' --after 1s: timer %s", reminder, r.TimerID)
	timers, err := c.Timers(ctx, reminder)
	if err != nil {
		return reminderStatus{}, fmt.Errorf("list the timers of %s: %w", reminder, err)
	}
	for _, t := range timers {
		owner := t.Owner
		if owner == "" {
			owner = "-"
		}
		say("  graft timers %s: %s owner %s in %s: %s", reminder, t.ID, owner, time.Until(t.Due).Round(time.Millisecond), t.Text)
	}
	var s reminderStatus
	var last error // the last status call's error, if it failed
	if err := waitFor(ctx, exited, 30*time.Second, "the scheduled stop of "+reminder, func() bool {
		s, last = reminderStatusOf(call(reminder, `{"kind":"status"}`))
		return last == nil && s.Timer == ""
	}); err != nil {
		return s, errors.Join(err, last)
	}
	say("%s stopped by that timer after %d ticks", reminder, s.Count)
	return s, nil
}
