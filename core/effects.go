package core

import (
	"fmt"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// A handler's timers, timer cancels and spawns are effects like its sends:
// they go into the batch's one Commit (so they happen exactly once, and
// not at all for a failed message), and one the store would refuse fails
// that message alone, before anything is committed, as a send to an
// unknown actor does.

// spawnsSoFar maps the names a batch's results spawn, up to the message
// being checked, to their behaviour: a later send or timer may target
// them, and a second spawn of one must agree on the behaviour.
type spawnsSoFar map[string]string

// effectFailure says why r's spawns or timers cannot be committed, or "";
// it records r's spawns in *spawned, made on the first one (so check them
// before r's sends; a batch without spawns allocates nothing).
func (a *actor) effectFailure(r *dynamic.Result, spawned *spawnsSoFar) string {
	c := a.core
	for _, s := range r.Spawns {
		if err := c.checkSpawn(a.ctx, s.Name, s.Behaviour, *spawned); err != nil {
			return fmt.Sprintf("handler spawned %q: %v", s.Name, err)
		}
		if len(s.Init) > c.cfg.MaxMessageSize {
			return fmt.Sprintf("handler spawned %q with a %d-byte init message, over the %d-byte message limit", s.Name, len(s.Init), c.cfg.MaxMessageSize)
		}
		if *spawned == nil {
			*spawned = spawnsSoFar{}
		}
		(*spawned)[s.Name] = s.Behaviour
	}
	for _, t := range r.Timers {
		if err := c.checkTarget(t.To, len(t.Payload), *spawned); err != nil {
			return fmt.Sprintf("handler set timer %q to %q: %v", t.ID, t.To, err)
		}
	}
	return ""
}

// checkTarget is checkSend that also accepts an actor spawned earlier in
// the same batch (the store creates it before it enqueues to it).
func (c *Core) checkTarget(to string, size int, spawned spawnsSoFar) error {
	if _, ok := spawned[to]; ok {
		if size > c.cfg.MaxMessageSize {
			return fmt.Errorf("message is %d bytes, over the %d-byte limit", size, c.cfg.MaxMessageSize)
		}
		return nil
	}
	return c.checkSend(to, size)
}

// addEffects adds the timers, cancels and spawns of results to cm, a
// commit about to be made: a relative timer is due a delay after now. It
// returns the earliest due time it set (zero if none), for the timer loop.
func addEffects(cm *mailbox.Commit, results []dynamic.Result) time.Time {
	var earliest, now time.Time
	for i := range results {
		r := &results[i]
		for _, s := range r.Spawns {
			init := s.Init
			if len(init) == 0 {
				init = nil // no first message
			}
			cm.Spawns = append(cm.Spawns, mailbox.SpawnRequest{Name: s.Name, Behaviour: s.Behaviour, Init: init})
		}
		for _, t := range r.Timers {
			if now.IsZero() {
				now = time.Now()
			}
			due := t.Due(now)
			if earliest.IsZero() || due.Before(earliest) {
				earliest = due
			}
			cm.Timers = append(cm.Timers, mailbox.TimerRequest{ID: t.ID, To: t.To, Due: due, Payload: t.Payload})
		}
		cm.CancelTimers = append(cm.CancelTimers, r.CancelTimers...)
	}
	return earliest
}
