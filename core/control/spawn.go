package control

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// The endpoints of actors made at run time and of durable timers: spawn,
// the timers of an actor, and a send that sets a timer (send with
// after_seconds or at). Destroy, which removes an actor for good, is
// served by actorAction like stop and start.

func (s *Server) spawn(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	var req SpawnRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Behaviour == "" {
		return nil, badRequest(fmt.Sprintf(`spawn actor %q: name the behaviour that drives it ({"behaviour": "B"})`, actor))
	}
	created, err := s.opts.Runtime.Spawn(r.Context(), actor, req.Behaviour, req.InitMessage())
	if err != nil {
		return nil, spawnError(err)
	}
	return SpawnResponse{Actor: actor, Behaviour: req.Behaviour, Created: created}, nil
}

// spawnCauses are the errors of a spawn that keep classify's status: a
// conflict, a bad name, the store's and the core's own conditions.
var spawnCauses = []error{
	mailbox.ErrSpawnConflict, mailbox.ErrInvalidName, mailbox.ErrEmptyActorName, mailbox.ErrTooLarge,
	mailbox.ErrDiskFull, mailbox.ErrClosed, mailbox.ErrStoreFailed, mailbox.ErrCorrupt, mailbox.ErrInUse,
	core.ErrShutdown, context.DeadlineExceeded, context.Canceled,
}

// spawnError maps a refused spawn to its answer. Every error the store
// returns wraps one of its sentinels, so one that wraps none of
// spawnCauses is the core refusing the request itself: an unknown
// behaviour, or a name in another virtual behaviour's namespace. Those are
// the caller's mistake, a 400, not a conflict with the core's state.
func spawnError(err error) error {
	for _, cause := range spawnCauses {
		if errors.Is(err, cause) {
			return err
		}
	}
	return &apiError{http.StatusBadRequest, CodeBadRequest, err.Error()}
}

func (s *Server) timers(r *http.Request) (any, error) {
	ts, err := s.opts.Runtime.Timers(r.Context(), r.PathValue("actor"))
	if err != nil {
		return nil, err // it names the actor
	}
	return NewTimers(ts), nil
}

// NewTimers is ts as the API shows them ([] for none).
func NewTimers(ts []mailbox.Timer) []Timer {
	out := make([]Timer, len(ts))
	for i, t := range ts {
		payload := t.Payload
		if payload == nil {
			payload = []byte{}
		}
		out[i] = Timer{ID: t.ID, Owner: t.Owner, To: t.To, Due: t.Due, Payload: payload,
			Text: replyText(payload), Size: len(payload)}
	}
	return out
}

// maxAfterSeconds bounds after_seconds: a time.Duration holds about 292
// years.
const maxAfterSeconds = float64(math.MaxInt64/int64(time.Second)) - 1

// sendLater serves a send with after_seconds or at: it sets a durable
// timer (Runtime.SendAfterID) and answers its id and due time. With an id
// a retry sets nothing new and answers the pending timer's id and due.
func (s *Server) sendLater(r *http.Request, actor string, req SendRequest) (any, error) {
	if err := core.CheckMessageID(req.ID); err != nil {
		return nil, err
	}
	switch {
	case req.AfterSeconds != nil && !req.At.IsZero():
		return nil, badRequest("give after_seconds or at, not both: a timer has one due time")
	case req.Sender != "":
		return nil, badRequest("a scheduled send takes no sender: its message arrives from no actor, with its timer id")
	}
	due := req.At
	if a := req.AfterSeconds; a != nil {
		if *a < 0 || *a > maxAfterSeconds {
			return nil, badRequest(fmt.Sprintf("after_seconds %v: give a delay of 0 seconds or more (at most %.0f)", *a, maxAfterSeconds))
		}
		due = time.Now().Add(time.Duration(*a * float64(time.Second)))
	}
	due = due.Round(0) // no monotonic reading: the time as the store keeps it
	id, err := s.opts.Runtime.SendAfterID(r.Context(), actor, req.ID, req.Body(), due)
	if err != nil {
		return nil, err
	}
	if req.ID != "" {
		// A retry of one still pending: its due time, not this request's.
		if ts, err := s.opts.Runtime.Timers(r.Context(), actor); err == nil {
			for _, t := range ts {
				if t.ID == id && t.Owner == "" {
					due = t.Due
				}
			}
		}
	}
	return SendResponse{Actor: actor, ID: req.ID, Outcome: OutcomeScheduled, TimerID: id, Due: due}, nil
}
