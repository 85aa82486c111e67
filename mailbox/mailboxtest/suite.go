// Package mailboxtest is the conformance suite for mailbox.Store backends.
// A backend's tests call Run with a function that opens the backend on a
// directory; every test runs on a real store, closed and reopened where the
// property is about durability.
package mailboxtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// Opener opens the backend under test on dir with opts.
type Opener func(t *testing.T, dir string, opts mailbox.Options) mailbox.Store

// Run runs every conformance test against the backend.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"EnqueueReadInOrder", testEnqueueReadInOrder},
		{"CommitIsAtomicAndDurable", testCommitIsAtomicAndDurable},
		{"CommitValidation", testCommitValidation},
		{"LazyCommit", testLazyCommit},
		{"FailedCommitWritesNothing", testFailedCommitWritesNothing},
		{"IdempotentSend", testIdempotentSend},
		{"RefusalIsAnOutcome", testRefusalIsAnOutcome},
		{"IDReusedWithAnotherPayload", testIDReusedWithAnotherPayload},
		{"IdempotencyWindow", testIdempotencyWindow},
		{"ConcurrentSameID", testConcurrentSameID},
		{"ConcurrentSendersSeeGaplessOrder", testConcurrentSendersSeeGaplessOrder},
		{"FailuresAndDeadLetters", testFailuresAndDeadLetters},
		{"ConcurrentRequeue", testConcurrentRequeue},
		{"BadInput", testBadInput},
		{"Registry", testRegistry},
		{"Fencing", testFencing},
		{"FencingAcrossReopen", testFencingAcrossReopen},
		{"History", testHistory},
		{"Notify", testNotify},
		{"Closed", testClosed},
		{"TimersSetAndCancel", testTimersSetAndCancel},
		{"FireDue", testFireDue},
		{"TimerToUnknownActor", testTimerToUnknownActor},
		{"FailedCommitSetsNoTimer", testFailedCommitSetsNoTimer},
		{"VirtualActors", testVirtualActors},
		{"VirtualConcurrentFirstSends", testVirtualConcurrentFirstSends},
		{"Spawn", testSpawn},
		{"RemoveLeavesNothing", testRemoveLeavesNothing},
		{"ReopenRebuildsEveryActor", testReopenRebuildsEveryActor},
		{"HandledWindow", testHandledWindow},
		{"ScheduleFromOutside", testScheduleFromOutside},
		{"RemoveDeletesSendsScheduledToIt", testRemoveDeletesSendsScheduledToIt},
		{"TraceParentTravelsWithTheMessage", testTraceParentTravelsWithTheMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// setup opens a store with the named actors registered (behaviour "b") and
// claimed, and returns their epochs.
func setup(t *testing.T, open Opener, dir string, opts mailbox.Options, actors ...string) (mailbox.Store, map[string]uint64) {
	t.Helper()
	s := open(t, dir, opts)
	epochs := make(map[string]uint64)
	for _, a := range actors {
		_, err := s.Register(ctx(t), a, "b")
		require.NoError(t, err)
		epochs[a], err = s.Claim(ctx(t), a)
		require.NoError(t, err)
	}
	return s, epochs
}

func send(t *testing.T, s mailbox.Store, actor, id, payload string) mailbox.Receipt {
	t.Helper()
	r, err := s.Enqueue(ctx(t), actor, mailbox.Message{ID: id, Sender: "test", Payload: []byte(payload)})
	require.NoError(t, err)
	return r
}

func payloads(ms []mailbox.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

func testEnqueueReadInOrder(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, _ := setup(t, open, dir, mailbox.Options{}, "a")
	var last uint64
	for i := 0; i < 10; i++ {
		r := send(t, s, "a", "", fmt.Sprint(i))
		assert.Greater(t, r.Seq, last, "sequence numbers increase")
		last = r.Seq
	}
	ms, err := s.Read(ctx(t), "a", 0, 4)
	require.NoError(t, err)
	assert.Equal(t, []string{"0", "1", "2", "3"}, payloads(ms))
	again, err := s.Read(ctx(t), "a", 0, 100)
	require.NoError(t, err)
	assert.Len(t, again, 10, "Read does not remove")
	after, err := s.Read(ctx(t), "a", ms[3].Seq, 100)
	require.NoError(t, err)
	assert.Equal(t, []string{"4", "5", "6", "7", "8", "9"}, payloads(after))
	assert.Equal(t, "test", after[0].Sender)
	assert.False(t, after[0].EnqueuedAt.IsZero())

	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	ms, err = s.Read(ctx(t), "a", 0, 100)
	require.NoError(t, err)
	assert.Len(t, ms, 10, "messages survive a reopen")
	r := send(t, s, "a", "", "10")
	assert.Greater(t, r.Seq, last, "sequence numbers are never reused after a reopen")
}

func testCommitIsAtomicAndDurable(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "b")
	send(t, s, "a", "m1", "one")
	r2 := send(t, s, "a", "m2", "two")
	send(t, s, "a", "", "three")
	st := mailbox.State{Schema: 2, Module: "v1", Data: []byte("count=2")}
	err := s.Commit(ctx(t), mailbox.Commit{
		Actor: "a", Epoch: ep["a"], Through: r2.Seq, State: &st,
		Outgoing: []mailbox.Outgoing{{To: "b", Message: mailbox.Message{Sender: "a", Payload: []byte("fwd")}}},
		Replies:  []mailbox.Reply{{MessageID: "m2", Payload: []byte("ok2")}},
	})
	require.NoError(t, err)
	check := func(s mailbox.Store) {
		ms, err := s.Read(ctx(t), "a", 0, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"three"}, payloads(ms), "acked messages are gone")
		got, err := s.State(ctx(t), "a")
		require.NoError(t, err)
		assert.Equal(t, st, got)
		act, err := s.Actor(ctx(t), "a")
		require.NoError(t, err)
		assert.Equal(t, "v1", act.Module)
		assert.EqualValues(t, 2, act.Schema)
		out, err := s.Read(ctx(t), "b", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"fwd"}, payloads(out), "outgoing message is in the receiver's mailbox")
		assert.Equal(t, "a", out[0].Sender)
		rc, err := s.Lookup(ctx(t), "a", "m2")
		require.NoError(t, err)
		assert.Equal(t, mailbox.OutcomeReplied, rc.Outcome)
		assert.Equal(t, "ok2", string(rc.Reply))
		rc, err = s.Lookup(ctx(t), "a", "m1")
		require.NoError(t, err)
		assert.Equal(t, mailbox.OutcomeApplied, rc.Outcome)
		stats, err := s.Stats("a")
		require.NoError(t, err)
		assert.Equal(t, r2.Seq, stats.Acked)
		assert.EqualValues(t, 1, stats.Depth)
	}
	check(s)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
}

func testCommitValidation(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	r := send(t, s, "a", "", "x")
	err := s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq + 1})
	assert.ErrorIs(t, err, mailbox.ErrBeyondEnd)
	assert.ErrorContains(t, err, `"a"`)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq}))
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq})
	assert.ErrorIs(t, err, mailbox.ErrAlreadyAcked)
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "nobody", Epoch: 1})
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Replies: []mailbox.Reply{{Payload: []byte("x")}}})
	assert.ErrorContains(t, err, "without a message id")
	// A state-only commit (Through 0) is how migrations commit.
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], State: &mailbox.State{Schema: 3, Module: "v2"}}))
}

// A lazy commit is applied at once and durable once a later synced write
// (or Close) is.
func testLazyCommit(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	st := mailbox.State{Schema: 2, Module: "v2", Data: []byte("migrated")}
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], State: &st, Lazy: true}))
	got, err := s.State(ctx(t), "a")
	require.NoError(t, err)
	assert.Equal(t, st, got, "a lazy commit is visible at once")
	send(t, s, "a", "", "synced after it")
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	got, err = s.State(ctx(t), "a")
	require.NoError(t, err)
	assert.Equal(t, st, got)
}

func testFailedCommitWritesNothing(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a", "b")
	defer s.Close()
	r := send(t, s, "a", "m", "x")
	st := mailbox.State{Schema: 1, Data: []byte("new")}
	err := s.Commit(ctx(t),
		mailbox.Commit{Actor: "b", Epoch: ep["b"], State: &st},
		mailbox.Commit{
			Actor: "a", Epoch: ep["a"], Through: r.Seq, State: &st,
			Replies:  []mailbox.Reply{{MessageID: "m", Payload: []byte("r")}},
			Outgoing: []mailbox.Outgoing{{To: "b", Message: mailbox.Message{Payload: []byte("ok")}}, {To: "ghost", Message: mailbox.Message{Payload: []byte("lost?")}}},
		})
	require.ErrorIs(t, err, mailbox.ErrUnknownActor)
	assert.ErrorContains(t, err, `"ghost"`)
	for _, a := range []string{"a", "b"} {
		got, err := s.State(ctx(t), a)
		require.NoError(t, err)
		assert.Empty(t, got.Data, "no state of a failed commit is written")
	}
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	assert.Len(t, ms, 1, "the message is not acked")
	out, err := s.Read(ctx(t), "b", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, out, "no outgoing message of a failed commit is delivered")
	rc, err := s.Lookup(ctx(t), "a", "m")
	require.NoError(t, err)
	assert.Equal(t, mailbox.OutcomePending, rc.Outcome)
	// The abandoned reservation in b's mailbox leaves b usable and in order.
	send(t, s, "b", "", "after")
	out, err = s.Read(ctx(t), "b", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"after"}, payloads(out))
}

func testIdempotentSend(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	r1 := send(t, s, "a", "call-1", "x")
	assert.False(t, r1.Duplicate)
	r2 := send(t, s, "a", "call-1", "x")
	assert.True(t, r2.Duplicate)
	assert.Equal(t, r1.Seq, r2.Seq)
	assert.Equal(t, mailbox.OutcomePending, r2.Outcome)
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	assert.Len(t, ms, 1, "a retried send is enqueued once")

	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r1.Seq,
		Replies: []mailbox.Reply{{MessageID: "call-1", Payload: []byte("answer")}}}))
	r3 := send(t, s, "a", "call-1", "x")
	assert.True(t, r3.Duplicate)
	assert.Equal(t, mailbox.OutcomeReplied, r3.Outcome)
	assert.Equal(t, "answer", string(r3.Reply))

	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	r4 := send(t, s, "a", "call-1", "x")
	assert.True(t, r4.Duplicate, "ids survive a reopen")
	assert.Equal(t, "answer", string(r4.Reply))
	ms, err = s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, ms)
	_, err = s.Lookup(ctx(t), "a", "never-sent")
	assert.ErrorIs(t, err, mailbox.ErrUnknownMessage)
}

// A refusal (the handler's terminal error) is committed like a reply: the
// state commits with it, and a retry with the same id, before or after a
// reopen, gets the refusal back and enqueues nothing.
func testRefusalIsAnOutcome(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	r1 := send(t, s, "a", "withdraw-1", "withdraw 500")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r1.Seq,
		State:   &mailbox.State{Schema: 1, Module: "1.0.0", Data: []byte(`{"refusals":1}`)},
		Replies: []mailbox.Reply{{MessageID: "withdraw-1", Refusal: "insufficient funds: balance 20, asked 500"}}}))
	check := func(s mailbox.Store) {
		t.Helper()
		r := send(t, s, "a", "withdraw-1", "withdraw 500")
		assert.True(t, r.Duplicate)
		assert.Equal(t, mailbox.OutcomeRefused, r.Outcome)
		assert.Equal(t, "insufficient funds: balance 20, asked 500", r.Error)
		assert.Empty(t, r.Reply)
		l, err := s.Lookup(ctx(t), "a", "withdraw-1")
		require.NoError(t, err)
		assert.Equal(t, mailbox.OutcomeRefused, l.Outcome)
		assert.Equal(t, r.Error, l.Error)
		st, err := s.State(ctx(t), "a")
		require.NoError(t, err)
		assert.JSONEq(t, `{"refusals":1}`, string(st.Data), "the refusing handle's state is committed")
		ms, err := s.Read(ctx(t), "a", 0, 10)
		require.NoError(t, err)
		assert.Empty(t, ms, "a refused message is acked, never redelivered")
	}
	check(s)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
}

// An id reused with a different payload is refused, naming both digests,
// queued or committed, before and after a reopen; an identical retry stays
// a duplicate; nothing of the refused send is stored.
func testIDReusedWithAnotherPayload(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	first := send(t, s, "a", "X1", "first")
	check := func(s mailbox.Store) {
		t.Helper()
		_, err := s.Enqueue(ctx(t), "a", mailbox.Message{ID: "X1", Payload: []byte("second")})
		var ie *mailbox.IDReuseError
		require.ErrorAs(t, err, &ie)
		assert.ErrorIs(t, err, mailbox.ErrIDReused)
		assert.Equal(t, first.Seq, ie.Seq)
		assert.NotEqual(t, ie.Stored, ie.Given)
		assert.Contains(t, err.Error(), ie.Stored)
		assert.Contains(t, err.Error(), ie.Given)
		assert.True(t, send(t, s, "a", "X1", "first").Duplicate, "an identical retry is a duplicate")
	}
	check(s)
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	require.Len(t, ms, 1, "the refused send stored nothing")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: first.Seq,
		Replies: []mailbox.Reply{{MessageID: "X1", Payload: []byte("r")}}}))
	check(s)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
}

func testIdempotencyWindow(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{IdempotencyWindow: 10}, "a")
	defer s.Close()
	var last uint64
	for i := 0; i < 30; i++ {
		last = send(t, s, "a", fmt.Sprintf("id-%d", i), "x").Seq
	}
	// Unacked ids are never forgotten, whatever the window.
	require.True(t, send(t, s, "a", "id-0", "x").Duplicate)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: last}))
	r := send(t, s, "a", "id-0", "x")
	assert.False(t, r.Duplicate, "an acked id older than the window is forgotten")
	r = send(t, s, "a", "id-29", "x")
	assert.True(t, r.Duplicate, "an id within the window is remembered")
	assert.Equal(t, mailbox.OutcomeApplied, r.Outcome)
}

func testConcurrentSameID(t *testing.T, open Opener) {
	s, _ := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	const n = 16
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := s.Enqueue(ctx(t), "a", mailbox.Message{ID: "same", Payload: []byte("x")})
			assert.NoError(t, err)
			seqs[i] = r.Seq
		}(i)
	}
	wg.Wait()
	for _, q := range seqs {
		assert.Equal(t, seqs[0], q, "every concurrent send with one id gets the same seq")
	}
	ms, err := s.Read(ctx(t), "a", 0, 100)
	require.NoError(t, err)
	assert.Len(t, ms, 1)
}

// testConcurrentSendersSeeGaplessOrder races many senders against a reader
// that acks what it reads: the reader must never see a message behind one
// it has already passed, and each sender's messages arrive in send order.
func testConcurrentSendersSeeGaplessOrder(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	const senders, each = 8, 60
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				_, err := s.Enqueue(ctx(t), "a", mailbox.Message{Sender: fmt.Sprint(i), Payload: []byte(fmt.Sprint(j))})
				assert.NoError(t, err)
			}
		}(i)
	}
	next := make(map[string]int)
	var lastSeq uint64
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < senders*each && time.Now().Before(deadline) {
		ms, err := s.Read(ctx(t), "a", 0, 50)
		require.NoError(t, err)
		for _, m := range ms {
			require.Greater(t, m.Seq, lastSeq)
			lastSeq = m.Seq
			require.Equal(t, fmt.Sprint(next[m.Sender]), string(m.Payload), "sender %s out of order", m.Sender)
			next[m.Sender]++
			got++
		}
		if len(ms) > 0 {
			require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: lastSeq}))
		}
	}
	wg.Wait()
	assert.Equal(t, senders*each, got)
}

func testBadInput(t *testing.T, open Opener) {
	s, _ := setup(t, open, t.TempDir(), mailbox.Options{MaxMessageSize: 1000}, "a")
	defer s.Close()
	_, err := s.Enqueue(ctx(t), "", mailbox.Message{Payload: []byte("x")})
	assert.ErrorIs(t, err, mailbox.ErrEmptyActorName)
	_, err = s.Enqueue(ctx(t), "nobody", mailbox.Message{Payload: []byte("x")})
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	assert.ErrorContains(t, err, `"nobody"`)
	_, err = s.Enqueue(ctx(t), "a", mailbox.Message{Payload: make([]byte, 1001)})
	var tooLarge *mailbox.TooLargeError
	require.ErrorAs(t, err, &tooLarge)
	assert.ErrorContains(t, err, "1000 bytes", "the error states the limit")
	_, err = s.Register(ctx(t), "bad\nname", "b")
	assert.ErrorIs(t, err, mailbox.ErrInvalidName)
	_, err = s.Register(ctx(t), strings.Repeat("x", 300), "b")
	assert.ErrorIs(t, err, mailbox.ErrInvalidName)
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, ms, "refused messages are not stored")
}

func testRegistry(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, _ := setup(t, open, dir, mailbox.Options{}, "b-actor", "a-actor")
	a, err := s.Register(ctx(t), "a-actor", "b")
	require.NoError(t, err, "registering again with the same behaviour is fine")
	assert.Equal(t, "b", a.Behaviour)
	_, err = s.Register(ctx(t), "a-actor", "other")
	assert.ErrorIs(t, err, mailbox.ErrBehaviourMismatch)
	require.NoError(t, s.SetStatus(ctx(t), "a-actor", "stopped"))
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	list, err := s.Actors(ctx(t))
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "a-actor", list[0].Name, "sorted by name")
	assert.Equal(t, "stopped", list[0].Status)
	send(t, s, "a-actor", "x", "y")
	require.NoError(t, s.Remove(ctx(t), "a-actor"))
	_, err = s.Actor(ctx(t), "a-actor")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	a, err = s.Register(ctx(t), "a-actor", "b")
	require.NoError(t, err)
	ms, err := s.Read(ctx(t), "a-actor", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, ms, "a removed actor's messages are gone")
	_, err = s.Lookup(ctx(t), "a-actor", "x")
	assert.ErrorIs(t, err, mailbox.ErrUnknownMessage, "and its ids")
}

// testFencingAcrossReopen: an epoch claimed after a reopen is above every
// one claimed before it, and fences a commit that carries an older one.
func testFencingAcrossReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	again, err := s.Claim(ctx(t), "a")
	require.NoError(t, err)
	require.Greater(t, again, ep["a"])
	r := send(t, s, "a", "", "x")
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	newer, err := s.Claim(ctx(t), "a")
	require.NoError(t, err)
	assert.Greater(t, newer, again, "the epochs of a reopened store are above the earlier ones")
	assert.ErrorIs(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: again, Through: r.Seq}), mailbox.ErrFenced)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: newer, Through: r.Seq}))
}

func testFencing(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	r := send(t, s, "a", "", "x")
	newer, err := s.Claim(ctx(t), "a")
	require.NoError(t, err)
	assert.Greater(t, newer, ep["a"])
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq})
	assert.ErrorIs(t, err, mailbox.ErrFenced)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: newer, Through: r.Seq}))
}

func testHistory(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir, mailbox.Options{})
	rec := mailbox.UpgradeRecord{Behaviour: "pong", From: "v1", To: "v2", Kind: "upgrade", Outcome: "completed",
		Started: time.Now().UTC(), Ended: time.Now().UTC(),
		Steps: []mailbox.UpgradeStep{{Actor: "pong", Step: "migrate", Duration: 3 * time.Millisecond}}}
	id1, err := s.AppendHistory(ctx(t), rec)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	id2, err := s.AppendHistory(ctx(t), mailbox.UpgradeRecord{Behaviour: "pong", From: "v2", To: "v1", Kind: "rollback"})
	require.NoError(t, err)
	assert.Greater(t, id2, id1)
	hist, err := s.ListHistory(ctx(t))
	require.NoError(t, err)
	require.Len(t, hist, 2)
	assert.Equal(t, "v2", hist[0].To)
	assert.Equal(t, rec.Steps, hist[0].Steps)
	assert.Equal(t, "rollback", hist[1].Kind)
}

func testNotify(t *testing.T, open Opener) {
	var mu sync.Mutex
	seen := map[string]uint64{}
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{Notify: func(actor string, last uint64) {
		mu.Lock()
		seen[actor] = last
		mu.Unlock()
	}}, "a", "b")
	defer s.Close()
	r := send(t, s, "a", "", "x")
	mu.Lock()
	assert.Equal(t, r.Seq, seen["a"])
	mu.Unlock()
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq,
		Outgoing: []mailbox.Outgoing{{To: "b", Message: mailbox.Message{Payload: []byte("y")}}}}))
	mu.Lock()
	assert.NotZero(t, seen["b"], "outgoing messages notify their receiver")
	mu.Unlock()
}

func testClosed(t *testing.T, open Opener) {
	s, _ := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is fine")
	_, err := s.Enqueue(ctx(t), "a", mailbox.Message{Payload: []byte("x")})
	assert.True(t, errors.Is(err, mailbox.ErrClosed))
}
