package dynamic

import (
	"bytes"
	"fmt"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
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
//   - the state differs from the batch's only if some message changed it.
//
// Anything else is ErrBadResponse: the batch has no effect.
func (m *Module) checkResponse(b Batch, resp *graftv1.HandleResponse) error {
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
	for i, r := range resp.Results {
		if err := checkResult(r); err != "" {
			return bad("result %d (message %d): %s", i, b.Messages[i].Seq, err)
		}
		changed = changed || r.StateChanged
	}
	if !changed && b.State.Schema == resp.State.Schema && !bytes.Equal(b.State.Data, resp.State.Data) {
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
	case r.Error != "" && (r.Refusal != "" || r.HasReply || len(r.Reply) > 0 || len(r.Outgoing) > 0 || r.StateChanged):
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
