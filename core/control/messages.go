package control

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/graft-host/graft/core/control/api"
)

// messages answers GET /v1/actors/{actor}/messages: the first messages
// waiting in the actor's mailbox, and the last it handled when its
// behaviour keeps them (verify_window), newest first.
func (s *Server) messages(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	if err := s.known(r.Context(), actor); err != nil {
		return nil, err
	}
	st := s.opts.Runtime.Store()
	queued, err := st.Read(r.Context(), actor, 0, api.MessagesShown)
	if err != nil {
		return nil, fmt.Errorf("messages of %q: %w", actor, err)
	}
	out := Messages{Queued: make([]QueuedMessage, len(queued)), Handled: []HandledMessage{}}
	for i, m := range queued {
		out.Queued[i] = QueuedMessage{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: preview(m.Payload), PayloadSize: len(m.Payload),
			EnqueuedAt: m.EnqueuedAt, Attempts: m.Attempts, LastError: m.LastError, TimerID: m.TimerID}
	}
	stats, err := st.Stats(actor)
	if err != nil {
		return nil, fmt.Errorf("messages of %q: %w", actor, err)
	}
	out.Depth = stats.Depth
	kept, err := st.Handled(r.Context(), actor)
	if err != nil {
		return nil, fmt.Errorf("handled messages of %q: %w", actor, err)
	}
	for _, h := range kept {
		for i, m := range h.Messages {
			hm := HandledMessage{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: preview(m.Payload), PayloadSize: len(m.Payload)}
			if i < len(h.Results) {
				res := h.Results[i]
				hm.Refusal, hm.Sends = res.Refusal, len(res.Sends)
				if res.HasReply {
					hm.Reply, hm.ReplySize = preview(res.Reply), len(res.Reply)
				}
			}
			out.Handled = append(out.Handled, hm)
		}
	}
	slices.Reverse(out.Handled)
	return out, nil
}

// preview is b cut to api.PayloadPreview bytes.
func preview(b []byte) []byte {
	return b[:min(len(b), api.PayloadPreview)]
}
