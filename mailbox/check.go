package mailbox

import "fmt"

// The checks below are what every backend refuses before it writes
// anything, with the same words: a request's shape, independent of what
// the store holds. They live here so that a backend cannot drift from
// another in what it accepts.

// MaxTimerID bounds a timer id, which backends use in keys.
const MaxTimerID = 1024

// CheckCommitRequests validates what a commit asks for besides its acks:
// replies, outgoing messages, spawns and timers, against the message size
// limit.
func CheckCommitRequests(c *Commit, maxMessageSize int) error {
	for i := range c.Outgoing {
		o := &c.Outgoing[i]
		if len(o.Message.Payload) > maxMessageSize {
			return fmt.Errorf("commit for actor %q: %w", c.Actor, &TooLargeError{Actor: o.To, Size: len(o.Message.Payload), Limit: maxMessageSize})
		}
	}
	for i := range c.Spawns {
		if err := CheckSpawn(&c.Spawns[i], maxMessageSize); err != nil {
			return fmt.Errorf("commit for actor %q: %w", c.Actor, err)
		}
	}
	if err := checkTimers(c, maxMessageSize); err != nil {
		return err
	}
	for _, r := range c.Replies {
		if r.MessageID == "" {
			return fmt.Errorf("commit for actor %q has a reply without a message id", c.Actor)
		}
		if size := max(len(r.Payload), len(r.Refusal)); size > maxMessageSize {
			return fmt.Errorf("reply to message %q: %w", r.MessageID, &TooLargeError{Actor: c.Actor, Size: size, Limit: maxMessageSize})
		}
	}
	return nil
}

// checkTimers validates a commit's timer requests.
func checkTimers(c *Commit, maxMessageSize int) error {
	for _, r := range c.Timers {
		switch {
		case r.ID == "":
			return fmt.Errorf("commit for actor %q sets a timer without an id", c.Actor)
		case len(r.ID) > MaxTimerID:
			return fmt.Errorf("commit for actor %q sets timer %.32q... with a %d-byte id, over %d bytes", c.Actor, r.ID, len(r.ID), MaxTimerID)
		case len(r.Payload) > maxMessageSize:
			return fmt.Errorf("commit for actor %q sets timer %q: %w", c.Actor, r.ID, &TooLargeError{Actor: r.To, Size: len(r.Payload), Limit: maxMessageSize})
		}
		if err := CheckActorName(r.To); err != nil {
			return fmt.Errorf("commit for actor %q sets timer %q: target: %w", c.Actor, r.ID, err)
		}
	}
	for _, id := range c.CancelTimers {
		if id == "" {
			return fmt.Errorf("commit for actor %q cancels a timer without an id", c.Actor)
		}
	}
	return nil
}

// CheckSpawn validates a spawn request.
func CheckSpawn(req *SpawnRequest, maxMessageSize int) error {
	if err := CheckActorName(req.Name); err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	if req.Behaviour == "" {
		return fmt.Errorf("spawn actor %q: behaviour name is empty: name the behaviour that drives it", req.Name)
	}
	if len(req.Init) > maxMessageSize {
		return fmt.Errorf("spawn actor %q: init message: %w", req.Name, &TooLargeError{Actor: req.Name, Size: len(req.Init), Limit: maxMessageSize})
	}
	return nil
}

// UnknownActorError is the error for a name that is neither registered
// nor virtual, saying what would make it known.
func UnknownActorError(name string) error {
	return fmt.Errorf("actor %q: %w: register it (list it in the config), spawn it, or make its behaviour virtual before sending to it", name, ErrUnknownActor)
}
