package mailboxtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// testTraceParentTravelsWithTheMessage checks that a message's trace
// context is kept wherever the message goes: enqueued from outside, sent by
// a commit, dead-lettered, requeued, and across a reopen.
func testTraceParentTravelsWithTheMessage(t *testing.T, open Opener) {
	const (
		fromClient  = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		fromHandler = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	)
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "b")
	_, err := s.Enqueue(ctx(t), "a", mailbox.Message{Sender: "client", Payload: []byte("one"), TraceParent: fromClient})
	require.NoError(t, err)
	plain := send(t, s, "a", "", "two") // no trace: nothing is stored for it
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: plain.Seq,
		Outgoing: []mailbox.Outgoing{{To: "b", Message: mailbox.Message{Sender: "a", Payload: []byte("sent"), TraceParent: fromHandler}}}}))

	ms, err := s.Read(ctx(t), "b", 0, 10)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, fromHandler, ms[0].TraceParent, "a sent message keeps its sender's trace")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "b", Epoch: ep["b"], Through: ms[0].Seq,
		DeadLetters: []mailbox.DeadLetterRequest{{Seq: ms[0].Seq, Error: "boom"}}}))
	dls, err := s.DeadLetters(ctx(t), "b")
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, fromHandler, dls[0].Message.TraceParent, "a dead letter keeps its trace")
	_, err = s.Requeue(ctx(t), "b", dls[0].Message.Seq)
	require.NoError(t, err)

	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	back, err := s.Read(ctx(t), "b", 0, 10)
	require.NoError(t, err)
	require.Len(t, back, 1)
	assert.Equal(t, fromHandler, back[0].TraceParent, "a requeued message keeps its trace across a reopen")
	assert.Equal(t, "sent", string(back[0].Payload))
	ep["a"], err = s.Claim(ctx(t), "a")
	require.NoError(t, err)
	r3, err := s.Enqueue(ctx(t), "a", mailbox.Message{Sender: "client", Payload: []byte("three"), TraceParent: fromClient})
	require.NoError(t, err)
	left, err := s.Read(ctx(t), "a", plain.Seq, 10)
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Equal(t, r3.Seq, left[0].Seq)
	assert.Equal(t, fromClient, left[0].TraceParent, "an enqueued message keeps its trace across a reopen")
}
