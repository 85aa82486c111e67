package upgrade

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// A dry run also replays recent traffic, for the behaviours that keep it
// (verify_window: the store keeps each actor's last N handled batches,
// with the state before each and what the running version produced):
//
//	for each kept batch of each actor:
//	  before := migrate(batch.Before, new schema)   (Init when none)
//	  result := new.Handle(before, batch.Messages)  in a module process
//	                                                of its own
//	  compare, message by message: failed where the old succeeded?
//	  reply, refusal, sends the same? and the final state against
//	  migrate(batch.After, new schema)
//
// A failure blocks a later upgrade like a failed migration; a divergence
// is reported, since a new version may change its replies on purpose. A
// replay has no effect on any actor: its handlers' calls to other actors
// fail (core.ErrReplayCall), and a batch that made one is skipped, not
// judged. The replay reads the store as any reader does and runs in its
// own process, so commits are not blocked.

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
// module process of its own; rep.Replay stays nil when no actor kept any.
func (m *Manager) replayAll(ctx context.Context, behaviour string, to Version, rep *DryRunReport) error {
	kept := map[string][]mailbox.Handled{}
	actors := m.host.ActorsOf(behaviour)
	for _, a := range actors {
		hs, err := m.host.Handled(ctx, a)
		if err != nil {
			return fmt.Errorf("read the traffic kept for actor %q: %w", a, err)
		}
		if len(hs) > 0 {
			kept[a] = hs
		}
	}
	if len(kept) == 0 {
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
	r := &ReplayReport{Counts: map[string]int{}, Examples: map[string][]DryRunFailure{}}
	rep.Replay = r
	for _, a := range actors {
		for _, h := range kept[a] {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("cut short (no verdict recorded): %w", err)
			}
			m.replayBatch(ctx, rp, a, h, to.Schema, r)
		}
	}
	return ctx.Err()
}

// replayBatch replays one kept batch of actor and compares, into r.
func (m *Manager) replayBatch(ctx context.Context, rp *core.Replay, actor string, h mailbox.Handled, to uint32, r *ReplayReport) {
	mod := rp.Instance
	batch := dynamic.Batch{Actor: actor, Messages: make([]dynamic.Message, len(h.Messages))}
	for i, msg := range h.Messages {
		batch.Messages[i] = dynamic.Message{Seq: msg.Seq, ID: msg.ID, Sender: msg.Sender, Payload: msg.Payload, Attempt: 1, CallChain: msg.CallChain, TimerID: msg.TimerID}
	}
	fail := func(detail string) { r.add(replayFailed, actor, detail, len(h.Messages)) }
	switch st, err := m.upTo(ctx, mod, actor, h.Before, to); {
	case err != nil:
		fail("migrate the state before the batch: " + err.Error())
		return
	case st == nil && mod.Info().InitInHandle:
		batch.Init = true
	case st == nil:
		init, err := mod.Init(ctx, actor)
		if err != nil {
			fail("init: " + err.Error())
			return
		}
		batch.State = init
	default:
		batch.State = *st
	}
	calls := rp.Calls()
	hctx, cancel := context.WithTimeout(ctx, m.opts.MigrateTimeout)
	res, err := mod.Handle(hctx, batch)
	cancel()
	if rp.Calls() > calls {
		r.Counts[replaySkipped] += len(h.Messages)
		return
	}
	if err != nil {
		fail(fmt.Sprintf("the batch of %d messages: %v", len(h.Messages), err))
		return
	}
	r.Messages += len(h.Messages)
	ok := compareResults(actor, h, res, r)
	if !ok {
		return // a failed message leaves the final state incomparable
	}
	after, err := m.upTo(ctx, mod, actor, h.After, to)
	if err == nil && after != nil && !sameState(after.Data, res.State.Data) {
		r.add(replayState, actor, fmt.Sprintf("%s, where the old version's migrates to %s", clip(res.State.Data), clip(after.Data)), 1)
	}
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
func compareResults(actor string, h mailbox.Handled, res *dynamic.BatchResult, r *ReplayReport) bool {
	ok := true
	for i, old := range h.Results {
		if i >= len(res.Results) {
			r.add(replayFailed, actor, fmt.Sprintf("message %s: no result", clip(h.Messages[i].Payload)), 1)
			ok = false
			continue
		}
		got, msg := res.Results[i], clip(h.Messages[i].Payload)
		if got.Err != "" {
			r.add(replayFailed, actor, fmt.Sprintf("message %s: %s", msg, got.Err), 1)
			ok = false
			continue
		}
		if !bytes.Equal(got.Reply, old.Reply) || got.HasReply != old.HasReply || got.Refusal != old.Refusal {
			r.add(replayReply, actor, fmt.Sprintf("%s -> %s", answer(old.Reply, old.Refusal), answer(got.Reply, got.Refusal)), 1)
		}
		if !sameSends(old.Sends, got.Outgoing) {
			r.add(replaySends, actor, fmt.Sprintf("message %s: %d sends, where the old version made %d", msg, len(got.Outgoing), len(old.Sends)), 1)
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
