package mailboxtest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// testHandledWindow: a commit that keeps its batch for dry runs adds it in
// the same write; the batches that hold none of the last KeepHandled
// messages are dropped; a commit without one keeps nothing; the window
// outlives a reopen and goes with the actor.
func testHandledWindow(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "plain")
	const keep = 3
	var before mailbox.State
	for batch := range 4 { // batches of 1, 2, 1, 2 messages: seqs 1 | 2 3 | 4 | 5 6
		n := 1 + batch%2
		var msgs []mailbox.Message
		var results []mailbox.HandledResult
		for i := range n {
			p := fmt.Sprintf("m%d.%d", batch, i)
			r := send(t, s, "a", "", p)
			msgs = append(msgs, mailbox.Message{Seq: r.Seq, Sender: "test", Payload: []byte(p)})
			results = append(results, mailbox.HandledResult{Reply: []byte("r-" + p), HasReply: true,
				Sends: []mailbox.Outgoing{{To: "plain", Message: mailbox.Message{Payload: []byte("fwd " + p)}}}})
		}
		after := mailbox.State{Schema: 1, Module: "1.0.0", Data: fmt.Appendf(nil, "after %d", batch)}
		require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: msgs[n-1].Seq, State: &after,
			Handled: &mailbox.Handled{Before: before, After: after, Messages: msgs, Results: results}, KeepHandled: keep}))
		before = after
	}
	r := send(t, s, "plain", "", "x")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "plain", Epoch: ep["plain"], Through: r.Seq}))

	check := func(s mailbox.Store) {
		t.Helper()
		hs, err := s.Handled(ctx(t), "a")
		require.NoError(t, err)
		require.Len(t, hs, 2, "the last 3 messages (4, 5, 6) are in the last two batches")
		assert.Equal(t, []string{"m2.0"}, payloads(hs[0].Messages))
		assert.Equal(t, []string{"m3.0", "m3.1"}, payloads(hs[1].Messages))
		assert.Equal(t, "after 1", string(hs[0].Before.Data))
		assert.Equal(t, "after 2", string(hs[0].After.Data))
		assert.Equal(t, "r-m3.1", string(hs[1].Results[1].Reply))
		assert.Equal(t, "fwd m3.1", string(hs[1].Results[1].Sends[0].Message.Payload))
		plain, err := s.Handled(ctx(t), "plain")
		require.NoError(t, err)
		assert.Empty(t, plain, "a commit without Handled keeps nothing")
	}
	check(s)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
	require.NoError(t, s.Remove(ctx(t), "a"))
	_, err := s.Handled(ctx(t), "a")
	require.ErrorIs(t, err, mailbox.ErrUnknownActor)
	_, err = s.Register(ctx(t), "a", "b")
	require.NoError(t, err)
	hs, err := s.Handled(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, hs, "a new actor of the same name starts with no window")
}
