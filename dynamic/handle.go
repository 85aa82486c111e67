package dynamic

import (
	"context"
	"fmt"
	"time"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// sender is the only writer of the Handle stream. A dedicated goroutine
// (rather than a lock around Send) keeps a plugin that stops reading from
// blocking callers past their timeout.
func (m *Instance) sender() {
	defer m.teardownWG.Done()
	for {
		select {
		case req := <-m.sendq:
			if err := m.stream.Send(req); err != nil {
				return // the receiver sees why and ends the module
			}
		case <-m.ctx.Done():
			return
		}
	}
}

// receiver dispatches answers to waiting Handle calls by batch id.
func (m *Instance) receiver() {
	defer m.teardownWG.Done()
	for {
		resp, err := m.stream.Recv()
		if err != nil {
			if m.ctx.Err() != nil {
				return // stopping or torn down
			}
			// The stream broke with the module still alive: give an exiting
			// process a moment to be seen as the cause, else kill it, since
			// a module without its stream cannot serve.
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-m.proc.Exited():
			case <-t.C:
				r := fmt.Sprintf("%v: %v", errStreamBroken, err)
				m.killReason.CompareAndSwap(nil, &r)
				m.proc.KillGroup()
			}
			t.Stop()
			return
		}
		m.mu.Lock()
		ch := m.pending[resp.BatchId]
		delete(m.pending, resp.BatchId)
		m.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered 1; one answer per id
		}
	}
}

// Handle sends a batch to the plugin and waits for its answer. Many calls
// may be in flight at once (one per actor, typically); they are pipelined on
// one stream. Errors: the module's end (ErrCrashed, ErrStopped), a
// *HangError after cfg.HandleTimeout (the module is then killed),
// ErrBadResponse, ErrBatchFailed, or ctx's error (the answer is abandoned;
// the module keeps running).
func (m *Instance) Handle(ctx context.Context, b Batch) (*BatchResult, error) {
	if len(b.Messages) == 0 {
		return &BatchResult{State: b.State}, nil
	}
	return m.handle(ctx, b)
}

// Warm sends the module a batch of no messages from state st, for actor:
// the plugin decodes (and if need be migrates) the state and answers it
// back, running no handler. It makes the path a batch takes through a
// module just started (its stream, its codec's first decode, its code
// paged in) warm before an upgrade moves actors onto it, so that their
// first batches there are not several times slower than the next ones.
// Its answer is checked as any batch's, and dropped.
//
// It is bounded by half the module's HandleTimeout besides ctx, so that a
// slow warm-up is given up before the hang detector would kill the module
// for it.
func (m *Instance) Warm(ctx context.Context, actor string, st State) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HandleTimeout/2)
	defer cancel()
	_, err := m.handle(ctx, Batch{Actor: actor, State: st})
	return err
}

// handle is Handle's round trip, for a batch of any size.
func (m *Instance) handle(ctx context.Context, b Batch) (*BatchResult, error) {
	id := m.nextID.Add(1)
	ch := make(chan *graftv1.HandleResponse, 1)
	m.mu.Lock()
	if m.deadErr != nil {
		err := m.deadErr
		m.mu.Unlock()
		return nil, err
	}
	m.pending[id] = ch
	m.mu.Unlock()

	msgs := make([]*graftv1.Message, len(b.Messages))
	backing := make([]graftv1.Message, len(b.Messages))
	for i := range b.Messages {
		in := &b.Messages[i]
		backing[i] = graftv1.Message{Seq: in.Seq, Id: in.ID, Sender: in.Sender, Payload: in.Payload, Attempt: in.Attempt,
			CallChain: in.CallChain, TimerId: in.TimerID, TraceParent: in.TraceParent}
		msgs[i] = &backing[i]
	}
	req := &graftv1.HandleRequest{BatchId: id, Actor: b.Actor, State: &graftv1.State{Schema: b.State.Schema, Data: b.State.Data}, Messages: msgs, Init: b.Init}

	timer := time.NewTimer(m.cfg.HandleTimeout)
	defer timer.Stop()
	select {
	case m.sendq <- req:
	case <-m.dead:
		return nil, m.Err()
	case <-timer.C:
		return nil, m.hang(id, b.Actor)
	case <-ctx.Done():
		m.forget(id)
		return nil, ctx.Err()
	}
	select {
	case resp := <-ch:
		return m.result(b, resp)
	case <-m.dead:
		select {
		case resp := <-ch: // answered just before the end
			return m.result(b, resp)
		default:
			return nil, m.Err()
		}
	case <-timer.C:
		return nil, m.hang(id, b.Actor)
	case <-ctx.Done():
		m.forget(id)
		return nil, ctx.Err()
	}
}

// hang kills a module that did not answer a batch in time.
func (m *Instance) hang(id uint64, actor string) error {
	m.forget(id)
	he := &HangError{Behaviour: m.info.Behaviour, Version: m.info.CodeVersion, Pid: m.proc.Pid(),
		Actor: actor, BatchID: id, After: m.cfg.HandleTimeout}
	r := fmt.Sprintf("batch %d for actor %q unanswered after %s", id, actor, m.cfg.HandleTimeout)
	m.killReason.CompareAndSwap(nil, &r)
	m.log.Error("plugin hung; killing its process group", "actor", actor, "batch", id, "after", m.cfg.HandleTimeout.String())
	m.proc.KillGroup()
	return he
}

// result checks and converts an answer (see check.go for what a
// consistent one is).
func (m *Instance) result(b Batch, resp *graftv1.HandleResponse) (*BatchResult, error) {
	if err := m.checkResponse(b, resp); err != nil {
		return nil, err
	}
	out := &BatchResult{Results: make([]Result, len(resp.Results)), State: State{Schema: resp.State.Schema, Data: resp.State.Data}}
	for i, r := range resp.Results {
		res := &out.Results[i]
		res.Err, res.Refusal, res.Reply, res.HasReply, res.StateChanged = r.Error, r.Refusal, r.Reply, r.HasReply, r.StateChanged
		if len(r.Outgoing) > 0 {
			res.Outgoing = make([]Outgoing, len(r.Outgoing))
			for j, o := range r.Outgoing {
				res.Outgoing[j] = Outgoing{To: o.To, Payload: o.Payload}
			}
		}
		deferred(res, r)
	}
	return out, nil
}

// deferred converts a checked result's timers, cancels and spawns.
func deferred(res *Result, r *graftv1.MessageResult) {
	if len(r.Timers) > 0 {
		res.Timers = make([]TimerSet, len(r.Timers))
		for j, t := range r.Timers {
			ts := TimerSet{ID: t.Id, To: t.To, Payload: t.Payload}
			if t.AfterNanos != nil {
				ts.After = time.Duration(*t.AfterNanos)
			} else {
				ts.At = time.Unix(0, *t.AtUnixNanos)
			}
			res.Timers[j] = ts
		}
	}
	if len(r.CancelTimers) > 0 {
		res.CancelTimers = r.CancelTimers
	}
	if len(r.Spawns) > 0 {
		res.Spawns = make([]Spawn, len(r.Spawns))
		for j, s := range r.Spawns {
			res.Spawns[j] = Spawn{Name: s.Name, Behaviour: s.Behaviour, Init: s.Init}
		}
	}
}
