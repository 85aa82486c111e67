package dynamic

import (
	"bytes"
	"fmt"
	"slices"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// checkResponse says whether a plugin's answer to batch b is one the core
// may commit. The plugin is a separate program, maybe buggy, maybe not
// built with this SDK: whatever it sends, the host must neither panic nor
// commit something inconsistent. An answer is consistent when:
//   - it is a batch error alone (no results, no state: ErrBatchFailed), or
//     one result per message and the new state;
//   - the state is at the plugin's schema (the one it declared in Info:
//     the core tags the committed state with it);
//   - a failed message (error) has no effect at all: no refusal, reply,
//     send or state change;
//   - reply bytes come with has_reply, and every send names its actor;
//   - timers, cancels and spawns are well formed (see checkDeferred);
//   - the state differs from the batch's only if some message changed it
//     (a batch with Init set starts from the state Init made instead);
//   - an init error comes alone, for a batch with Init set (ErrInitFailed).
//
// Anything else is ErrBadResponse: the batch has no effect.
func (m *Instance) checkResponse(b Batch, resp *graftv1.HandleResponse) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("graft: plugin %s %s (%s): batch for actor %q: %s: %w",
			m.info.Behaviour, m.info.CodeVersion, m.cfg.Path, b.Actor, fmt.Sprintf(format, args...), ErrBadResponse)
	}
	if resp == nil {
		return bad("no answer")
	}
	if resp.BatchError != "" {
		if len(resp.Results) > 0 || resp.State != nil {
			return bad("a batch error (%q) with results or a state", truncate(resp.BatchError, 200))
		}
		return fmt.Errorf("graft: plugin %s %s: batch for actor %q: %s: %w",
			m.info.Behaviour, m.info.CodeVersion, b.Actor, resp.BatchError, ErrBatchFailed)
	}
	if resp.InitError != "" {
		if !b.Init || len(resp.Results) > 0 || resp.State != nil {
			return bad("an init error (%q) for a batch without init, or with results or a state", truncate(resp.InitError, 200))
		}
		return fmt.Errorf("graft: plugin %s %s: actor %q: %w: %s",
			m.info.Behaviour, m.info.CodeVersion, b.Actor, ErrInitFailed, truncate(resp.InitError, 4096))
	}
	if len(resp.Results) != len(b.Messages) {
		return fmt.Errorf("graft: plugin %s %s (%s): answered a batch of %d messages for actor %q with %d results: %w",
			m.info.Behaviour, m.info.CodeVersion, m.cfg.Path, len(b.Messages), b.Actor, len(resp.Results), ErrBadResponse)
	}
	if resp.State == nil {
		return bad("answered without the new state")
	}
	if resp.State.Schema != m.info.SchemaVersion {
		return bad("the new state is at schema %d, but the plugin declared schema %d", resp.State.Schema, m.info.SchemaVersion)
	}
	changed := false
	timerIDs := map[string]bool{} // timer ids set so far in the batch
	for i, r := range resp.Results {
		err := checkResult(r)
		if err == "" {
			err = checkDeferred(r, m.cfg.Limits.MaxMessageSize, timerIDs)
		}
		if err != "" {
			return bad("result %d (message %d): %s", i, b.Messages[i].Seq, err)
		}
		changed = changed || r.StateChanged
	}
	if !b.Init && !changed && b.State.Schema == resp.State.Schema && !bytes.Equal(b.State.Data, resp.State.Data) {
		return bad("the state changed, but no message says it changed it")
	}
	return nil
}

// checkResult explains what is inconsistent in one message's result, or
// returns "".
func checkResult(r *graftv1.MessageResult) string {
	switch {
	case r == nil:
		return "missing"
	case r.Error != "" && (r.Refusal != "" || r.HasReply || len(r.Reply) > 0 || len(r.Outgoing) > 0 || r.StateChanged ||
		len(r.Timers) > 0 || len(r.CancelTimers) > 0 || len(r.Spawns) > 0):
		return "a failed message with effects (a failure has none)"
	case !r.HasReply && len(r.Reply) > 0:
		return "reply bytes without has_reply"
	}
	for j, o := range r.Outgoing {
		if o == nil || o.To == "" {
			return fmt.Sprintf("send %d names no actor", j)
		}
	}
	return ""
}

// checkDeferred explains what is malformed in one result's timers, cancels
// and spawns, or returns "": more than wire's bounds of them; a timer
// without an id (or with one over wire.MaxTimerID bytes), without an actor
// to deliver to, with both or neither of after_nanos and at_unix_nanos, or
// with an id set earlier in the batch (seen) or cancelled by the same
// message; a cancel of an empty or over-long id; a spawn without a name or
// a behaviour; a timer payload or spawn init over maxMessage bytes (0: no
// limit). The SDK fails such a handler itself, with a clearer error, so
// only a buggy or foreign plugin sends them.
func checkDeferred(r *graftv1.MessageResult, maxMessage int, seen map[string]bool) string {
	switch {
	case len(r.Timers) > wire.MaxTimersPerMessage:
		return fmt.Sprintf("%d timers, over the limit of %d per message", len(r.Timers), wire.MaxTimersPerMessage)
	case len(r.CancelTimers) > wire.MaxCancelsPerMessage:
		return fmt.Sprintf("%d timer cancels, over the limit of %d per message", len(r.CancelTimers), wire.MaxCancelsPerMessage)
	case len(r.Spawns) > wire.MaxSpawnsPerMessage:
		return fmt.Sprintf("%d spawns, over the limit of %d per message", len(r.Spawns), wire.MaxSpawnsPerMessage)
	}
	tooBig := func(p []byte) bool { return maxMessage > 0 && len(p) > maxMessage }
	for j, id := range r.CancelTimers {
		if id == "" || len(id) > wire.MaxTimerID {
			return fmt.Sprintf("timer cancel %d: the id is empty or over %d bytes", j, wire.MaxTimerID)
		}
	}
	for j, t := range r.Timers {
		switch {
		case t == nil:
			return fmt.Sprintf("timer %d is missing", j)
		case t.Id == "" || len(t.Id) > wire.MaxTimerID:
			return fmt.Sprintf("timer %d: the id is empty or over %d bytes", j, wire.MaxTimerID)
		case t.To == "":
			return fmt.Sprintf("timer %s names no actor", truncate(t.Id, 100))
		case (t.AfterNanos == nil) == (t.AtUnixNanos == nil):
			return fmt.Sprintf("timer %s has both or neither of after_nanos and at_unix_nanos (exactly one says when)", truncate(t.Id, 100))
		case tooBig(t.Payload):
			return fmt.Sprintf("the message of timer %s is %d bytes, over the %d-byte limit (limits.max_message_size)", truncate(t.Id, 100), len(t.Payload), maxMessage)
		case seen[t.Id]:
			return fmt.Sprintf("timer %s is set twice in the batch", truncate(t.Id, 100))
		case slices.Contains(r.CancelTimers, t.Id):
			return fmt.Sprintf("timer %s is set and cancelled by the same message", truncate(t.Id, 100))
		}
		seen[t.Id] = true
	}
	for j, sp := range r.Spawns {
		switch {
		case sp == nil:
			return fmt.Sprintf("spawn %d is missing", j)
		case sp.Name == "" || sp.Behaviour == "":
			return fmt.Sprintf("spawn %d (%q of behaviour %q) needs a name and a behaviour", j, truncate(sp.Name, 100), truncate(sp.Behaviour, 100))
		case tooBig(sp.Init):
			return fmt.Sprintf("the init payload of spawned actor %q is %d bytes, over the %d-byte limit (limits.max_message_size)", truncate(sp.Name, 100), len(sp.Init), maxMessage)
		}
	}
	return ""
}
