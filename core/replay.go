package core

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// ErrReplayCall is what a handler's call gets while a dry run replays
// its messages: a replay has no effect on any actor, so it cannot ask one
// anything. The batch is left out of the comparison.
var ErrReplayCall = errors.New("a dry run's replay makes no calls to other actors")

// Replay is a module process of its own that a dry run replays kept
// batches on (mailbox.Handled): nothing it produces is committed, and the
// calls its handlers make fail with ErrReplayCall and are counted by the
// calling actor.
type Replay struct {
	// Instance is the module; use its Handle, Init and Migrate.
	Instance *dynamic.Instance
	calls    *replayCaller
	stop     func(context.Context) error
}

// CallsOf is how many calls actor's replayed handlers have tried.
func (r *Replay) CallsOf(actor string) int {
	r.calls.mu.Lock()
	defer r.calls.mu.Unlock()
	return r.calls.by[actor]
}

// Stop ends the module process.
func (r *Replay) Stop(ctx context.Context) error { return r.stop(ctx) }

// replayCaller answers every handler's call of a replay with
// ErrReplayCall, counting them by calling actor.
type replayCaller struct {
	mu sync.Mutex
	by map[string]int
}

func (c *replayCaller) Call(_ context.Context, req dynamic.CallRequest) ([]byte, error) {
	c.mu.Lock()
	c.by[req.From]++
	c.mu.Unlock()
	return nil, ErrReplayCall
}

// StartReplay starts a module process of behaviour from binary (the
// cache's copy, with its sha256) for a dry run's replay, with the
// behaviour's own limits and containment. Stop it when done.
func (h *UpgradeHooks) StartReplay(ctx context.Context, behaviour, binary, sha256 string) (*Replay, error) {
	if _, ok := h.c.cfg.Behaviours[behaviour]; !ok {
		return nil, fmt.Errorf("replay: unknown behaviour %q", behaviour)
	}
	cfg := h.c.moduleConfig(behaviour)
	cfg.Path, cfg.SHA256 = binary, sha256
	calls := &replayCaller{by: map[string]int{}}
	cfg.Caller = calls
	m, err := dynamic.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start %s module from %s for the replay: %w", behaviour, binary, h.c.nameSource(behaviour, err))
	}
	stopTimeout := h.c.stopTimeout(behaviour)
	return &Replay{Instance: m, calls: calls, stop: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, stopTimeout)
		defer cancel()
		return m.Stop(ctx)
	}}, nil
}

// Handled returns an actor's batches kept for dry runs (mailbox.Reader).
func (h *UpgradeHooks) Handled(ctx context.Context, actor string) ([]mailbox.Handled, error) {
	return h.c.store.Handled(ctx, actor)
}

// handled is a committed batch as a dry run replays it: the state before
// and after, the messages, and each one's reply, refusal and sends.
func handled(before, after mailbox.State, msgs []mailbox.Message, results []dynamic.Result) *mailbox.Handled {
	h := &mailbox.Handled{Before: before, After: after, Messages: msgs, Results: make([]mailbox.HandledResult, len(results))}
	for i, r := range results {
		hr := mailbox.HandledResult{Reply: r.Reply, HasReply: r.HasReply, Refusal: r.Refusal}
		for _, o := range r.Outgoing {
			hr.Sends = append(hr.Sends, mailbox.Outgoing{To: o.To, Message: mailbox.Message{Payload: o.Payload}})
		}
		h.Results[i] = hr
	}
	return h
}
