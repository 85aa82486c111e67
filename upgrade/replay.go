package upgrade

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// A dry run also replays recent traffic, for the behaviours that keep it
// (verify_window: the store keeps each actor's last N handled batches,
// with the state before each and what the running version produced):
//
//	for each actor, several at a time, for each run of kept batches
//	that follow one another (each starts from the state the last one
//	committed):
//	  s := migrate(run[0].Before, new schema)      (Init when none)
//	  for the run's messages, 64 at a time:
//	    result := new.Handle(s, messages); s = result.State
//	    compare, message by message: failed where the old succeeded?
//	    reply, refusal, sends the same?
//	  compare s with migrate(run[last].After, new schema)
//
// It runs in a module process of its own. A failure blocks a later
// upgrade like a failed migration; a divergence is reported, since a new
// version may change its replies on purpose. A replay has no effect on
// any actor: its handlers' calls to other actors fail
// (core.ErrReplayCall), and the rest of a run that made one is skipped,
// not judged. The replay reads the store as any reader does, so commits
// are not blocked; docs/BENCHMARKS.md has what it adds to a loaded core's
// p99.

// Kinds of replay result, the keys of ReplayReport.Counts.
const (
	replayFailed  = "replay failed"
	replayReply   = "replies differ"
	replaySends   = "sends differ"
	replayState   = "state differs"
	replaySkipped = "skipped (calls another actor)"
)

// ReplayReport is what replaying the kept traffic found.
type ReplayReport struct {
	// Messages counts the messages replayed (skipped ones excluded).
	Messages int
	// Counts are messages by kind (a batch for "state differs"); Examples
	// the first few of each, as "actor: detail".
	Counts   map[string]int
	Examples map[string][]DryRunFailure
}

// Failures counts the replayed messages the new version failed where the
// old one had succeeded: they block an upgrade.
func (r *ReplayReport) Failures() int {
	if r == nil {
		return 0
	}
	return r.Counts[replayFailed]
}

// summary is the replay in the words of the dry run's summary.
func (r *ReplayReport) summary() string {
	s := fmt.Sprintf("replayed %d messages: %d failures", r.Messages, r.Counts[replayFailed])
	for _, k := range []string{replayReply, replaySends, replayState} {
		s += fmt.Sprintf(", %s in %d", k, r.Counts[k])
		if ex := r.Examples[k]; len(ex) > 0 {
			s += fmt.Sprintf(" (e.g. %s: %s)", ex[0].Actor, ex[0].Detail)
		}
	}
	if n := r.Counts[replaySkipped]; n > 0 {
		s += fmt.Sprintf("; %d %s", n, replaySkipped)
	}
	if ex := r.Examples[replayFailed]; len(ex) > 0 {
		s += fmt.Sprintf("; first failure %s: %s", ex[0].Actor, ex[0].Detail)
	}
	return s
}

func (r *ReplayReport) add(kind, actor, detail string, n int) {
	r.Counts[kind] += n
	if len(r.Examples[kind]) < maxFailureExamples {
		r.Examples[kind] = append(r.Examples[kind], DryRunFailure{Actor: actor, Detail: detail})
	}
}

// replayAll replays every actor's kept batches on the binary of to in a
// module process of its own, several actors at a time; rep.Replay stays
// nil when no actor kept any.
func (m *Manager) replayAll(ctx context.Context, behaviour string, to Version, rep *DryRunReport) error {
	// Which actors kept traffic: each one's batches are read again by the
	// worker that replays them, so that no more than replayParallel
	// actors' batches are in memory at once.
	var keeping []string
	for _, a := range m.host.ActorsOf(behaviour) {
		hs, err := m.host.Handled(ctx, a)
		if err != nil {
			return fmt.Errorf("read the traffic kept for actor %q: %w", a, err)
		}
		if len(hs) > 0 {
			keeping = append(keeping, a)
		}
	}
	if len(keeping) == 0 {
		return nil
	}
	rp, err := m.host.StartReplay(ctx, behaviour, to.Path, to.SHA)
	if err != nil {
		return err
	}
	defer func() {
		if err := rp.Stop(context.WithoutCancel(ctx)); err != nil {
			m.log.Warn("the replay's module did not stop cleanly", "behaviour", behaviour, "err", err)
		}
	}()
	total := &ReplayReport{Counts: map[string]int{}, Examples: map[string][]DryRunFailure{}}
	rep.Replay = total
	var mu sync.Mutex
	sem := make(chan struct{}, replayParallel)
	var wg sync.WaitGroup
	var readErr error
	for _, a := range keeping {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			hs, err := m.host.Handled(ctx, a)
			r := &ReplayReport{Counts: map[string]int{}, Examples: map[string][]DryRunFailure{}}
			for _, chain := range chains(hs) {
				m.replayChain(ctx, rp, a, chain, to.Schema, r)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && readErr == nil {
				readErr = fmt.Errorf("read the traffic kept for actor %q: %w", a, err)
			}
			total.merge(r)
		})
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	for k, ex := range total.Examples { // a stable choice and order, whichever actor finished first
		slices.SortFunc(ex, func(x, y DryRunFailure) int { return strings.Compare(x.Actor, y.Actor) })
		total.Examples[k] = ex[:min(len(ex), maxFailureExamples)]
	}
	if ctx.Err() != nil {
		return fmt.Errorf("cut short (no verdict recorded): %w", ctx.Err())
	}
	return nil
}

// replayParallel is how many actors a replay runs at once: enough to
// keep the replay's own module busy, few enough to leave the live ones
// the machine.
const replayParallel = 4

// replayChunk bounds the messages handed to the new version at once.
const replayChunk = 64

// merge adds o's counts and examples to r.
func (r *ReplayReport) merge(o *ReplayReport) {
	r.Messages += o.Messages
	for k, n := range o.Counts {
		r.Counts[k] += n
	}
	for k, ex := range o.Examples { // all of them: replayAll sorts, then keeps the first
		r.Examples[k] = append(r.Examples[k], ex...)
	}
}

// chains splits an actor's kept batches into runs where each batch starts
// from the state the one before it committed: a run is replayed as one
// sequence from its first state (a gap, such as an upgrade's migration
// commit or a dead letter, starts a new run).
func chains(hs []mailbox.Handled) [][]mailbox.Handled {
	var out [][]mailbox.Handled
	for i, h := range hs {
		if i == 0 || !sameState(hs[i-1].After.Data, h.Before.Data) || hs[i-1].After.Schema != h.Before.Schema {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], h)
	}
	return out
}

// replayChain replays one run of actor's kept batches on the new version,
// from its first state migrated up, and compares each message's result
// and the final state (against the old version's, migrated up) into r.
func (m *Manager) replayChain(ctx context.Context, rp *core.Replay, actor string, chain []mailbox.Handled, to uint32, r *ReplayReport) {
	mod := rp.Instance
	var msgs []mailbox.Message
	var old []mailbox.HandledResult
	for _, h := range chain {
		msgs, old = append(msgs, h.Messages...), append(old, h.Results...)
	}
	fail := func(n int, detail string) { r.add(replayFailed, actor, detail, n) }
	st, err := m.upTo(ctx, mod, actor, chain[0].Before, to)
	if err != nil {
		fail(len(msgs), "migrate the state before the kept messages: "+err.Error())
		return
	}
	calls, ok := rp.CallsOf(actor), true
	for start := 0; start < len(msgs); start += replayChunk {
		end := min(start+replayChunk, len(msgs))
		batch := dynamic.Batch{Actor: actor, Messages: make([]dynamic.Message, 0, end-start)}
		for _, msg := range msgs[start:end] {
			batch.Messages = append(batch.Messages, dynamic.Message{Seq: msg.Seq, ID: msg.ID, Sender: msg.Sender, Payload: msg.Payload, Attempt: 1, CallChain: msg.CallChain, TimerID: msg.TimerID})
		}
		if st == nil {
			if st, err = m.initState(ctx, mod, actor, &batch); err != nil {
				fail(len(msgs)-start, "init: "+err.Error())
				return
			}
		}
		if st != nil {
			batch.State = *st
		}
		hctx, cancel := context.WithTimeout(ctx, m.opts.MigrateTimeout)
		res, err := mod.Handle(hctx, batch)
		cancel()
		if rp.CallsOf(actor) > calls {
			r.Counts[replaySkipped] += len(msgs) - start // a handler called out: the rest cannot be judged
			return
		}
		if err != nil {
			fail(len(msgs)-start, fmt.Sprintf("%d messages from %s: %v", len(msgs)-start, clip(msgs[start].Payload), err))
			return
		}
		r.Messages += end - start
		ok = compareResults(actor, msgs[start:end], old[start:end], res, r) && ok
		st = &res.State
	}
	after, err := m.upTo(ctx, mod, actor, chain[len(chain)-1].After, to)
	if ok && err == nil && after != nil && !sameState(after.Data, st.Data) {
		r.add(replayState, actor, fmt.Sprintf("%s, where the old version's migrates to %s", clip(st.Data), clip(after.Data)), 1)
	}
}

// initState is the state a replay starts from for an actor that had none:
// the plugin's Init inside the batch when it can (nil state, Init set),
// or its Init call.
func (m *Manager) initState(ctx context.Context, mod *dynamic.Instance, actor string, batch *dynamic.Batch) (*dynamic.State, error) {
	if mod.Info().InitInHandle {
		batch.Init = true
		return nil, nil
	}
	st, err := mod.Init(ctx, actor)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// upTo is st migrated to schema to by mod (nil for no state).
func (m *Manager) upTo(ctx context.Context, mod *dynamic.Instance, actor string, st mailbox.State, to uint32) (*dynamic.State, error) {
	if len(st.Data) == 0 && st.Module == "" {
		return nil, nil
	}
	if st.Schema == to {
		return &dynamic.State{Schema: st.Schema, Data: st.Data}, nil
	}
	up, err := m.migrateOnce(ctx, mod, actor, dynamic.State{Schema: st.Schema, Data: st.Data}, to)
	if err != nil {
		return nil, err
	}
	return &up, nil
}

// compareResults compares each message's result with the kept one, into
// r, and says whether every message succeeded.
func compareResults(actor string, msgs []mailbox.Message, old []mailbox.HandledResult, res *dynamic.BatchResult, r *ReplayReport) bool {
	ok := true
	for i, o := range old {
		msg := clip(msgs[i].Payload)
		if i >= len(res.Results) {
			r.add(replayFailed, actor, fmt.Sprintf("message %s: no result", msg), 1)
			ok = false
			continue
		}
		got := res.Results[i]
		if got.Err != "" {
			r.add(replayFailed, actor, fmt.Sprintf("message %s: %s", msg, got.Err), 1)
			ok = false
			continue
		}
		if !bytes.Equal(got.Reply, o.Reply) || got.HasReply != o.HasReply || got.Refusal != o.Refusal {
			r.add(replayReply, actor, fmt.Sprintf("%s -> %s", answer(o.Reply, o.Refusal), answer(got.Reply, got.Refusal)), 1)
		}
		if !sameSends(o.Sends, got.Outgoing) {
			r.add(replaySends, actor, fmt.Sprintf("message %s: %d sends, where the old version made %d", msg, len(got.Outgoing), len(o.Sends)), 1)
		}
	}
	return ok
}

func answer(reply []byte, refusal string) string {
	if refusal != "" {
		return "refused " + clip([]byte(refusal))
	}
	return clip(reply)
}

func sameSends(old []mailbox.Outgoing, got []dynamic.Outgoing) bool {
	return slices.EqualFunc(old, got, func(o mailbox.Outgoing, g dynamic.Outgoing) bool {
		return o.To == g.To && bytes.Equal(o.Message.Payload, g.Payload)
	})
}
