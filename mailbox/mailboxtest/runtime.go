package mailboxtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// createdLog records Options.Created calls, and whether the store already
// knew the actor when it said so.
type createdLog struct {
	mu    sync.Mutex
	store mailbox.Store // set once opened; Created looks the actor up in it
	calls map[string][]string
	seen  map[string]error
}

func (l *createdLog) created(name, behaviour string) {
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	var err error
	if s != nil {
		// Created runs outside the store's locks: it may call the store.
		_, err = s.Actor(context.Background(), name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls, l.seen = map[string][]string{}, map[string]error{}
	}
	l.calls[name] = append(l.calls[name], behaviour)
	l.seen[name] = err
}

// count reports how often name was announced, and the lookup's error.
func (l *createdLog) count(name string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls[name]), l.seen[name]
}

// virtualOptions makes every "acc/KEY" name a virtual actor of behaviour
// "acc".
func virtualOptions(l *createdLog) mailbox.Options {
	return mailbox.Options{
		Virtual: func(name string) (string, bool) {
			b, key, ok := strings.Cut(name, "/")
			return b, ok && b == "acc" && key != ""
		},
		Created: l.created,
	}
}

func openVirtual(t *testing.T, open Opener, dir string, l *createdLog, actors ...string) (mailbox.Store, map[string]uint64) {
	s, ep := setup(t, open, dir, virtualOptions(l), actors...)
	l.mu.Lock()
	l.store = s
	l.mu.Unlock()
	return s, ep
}

func requireCreatedOnce(t *testing.T, l *createdLog, name string) {
	t.Helper()
	n, err := l.count(name)
	assert.Equal(t, 1, n, "%s is announced once", name)
	assert.NoError(t, err, "%s exists when it is announced", name)
}

// The first Enqueue, Outgoing message or fired timer to a virtual name
// creates the actor with its message; other unknown names stay unknown.
func testVirtualActors(t *testing.T, open Opener) {
	dir := t.TempDir()
	l := &createdLog{}
	s, ep := openVirtual(t, open, dir, l, "a")
	send(t, s, "acc/alice", "", "hi")
	send(t, s, "acc/alice", "", "again")
	requireCreatedOnce(t, l, "acc/alice")
	for _, name := range []string{"nosuch/x", "acc", "acc/"} {
		_, err := s.Enqueue(ctx(t), name, mailbox.Message{Payload: []byte("x")})
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor, name)
	}
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"],
		Outgoing: []mailbox.Outgoing{{To: "acc/bob", Message: mailbox.Message{Sender: "a", Payload: []byte("out")}}},
		Timers:   []mailbox.TimerRequest{{ID: "t", To: "acc/carol", Due: time.Now().Add(-time.Second), Payload: []byte("tick")}}}))
	requireCreatedOnce(t, l, "acc/bob")
	n, _ := l.count("acc/carol")
	assert.Zero(t, n, "a timer's target is created when it fires, not when it is set")
	fired, err := s.FireDue(ctx(t), time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, fired, 1)
	requireCreatedOnce(t, l, "acc/carol")

	check := func(s mailbox.Store) {
		t.Helper()
		for name, want := range map[string][]string{"acc/alice": {"hi", "again"}, "acc/bob": {"out"}, "acc/carol": {"tick"}} {
			act, err := s.Actor(ctx(t), name)
			require.NoError(t, err)
			assert.Equal(t, "acc", act.Behaviour)
			assert.Equal(t, mailbox.OriginVirtual, act.Origin)
			ms, err := s.Read(ctx(t), name, 0, 10)
			require.NoError(t, err)
			assert.Equal(t, want, payloads(ms), name)
		}
		act, err := s.Actor(ctx(t), "a")
		require.NoError(t, err)
		assert.Equal(t, mailbox.OriginConfig, act.Origin)
	}
	check(s)
	require.NoError(t, s.Close())
	l2 := &createdLog{}
	s, _ = openVirtual(t, open, dir, l2)
	defer s.Close()
	check(s)
	send(t, s, "acc/alice", "", "after reopen")
	n, _ = l2.count("acc/alice")
	assert.Zero(t, n, "an existing virtual actor is not created again")
}

// Concurrent first sends from 16 producers to the same virtual names
// create each actor once and lose no message.
func testVirtualConcurrentFirstSends(t *testing.T, open Opener) {
	l := &createdLog{}
	s, _ := openVirtual(t, open, t.TempDir(), l)
	defer s.Close()
	const producers, names = 16, 12
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for k := 0; k < names; k++ {
				name := fmt.Sprintf("acc/%d", (p+k)%names)
				_, err := s.Enqueue(ctx(t), name, mailbox.Message{Sender: fmt.Sprint(p), Payload: []byte(fmt.Sprint(p))})
				assert.NoError(t, err)
			}
		}(p)
	}
	wg.Wait()
	list, err := s.Actors(ctx(t))
	require.NoError(t, err)
	assert.Len(t, list, names)
	for k := 0; k < names; k++ {
		name := fmt.Sprintf("acc/%d", k)
		requireCreatedOnce(t, l, name)
		ms, err := s.Read(ctx(t), name, 0, 100)
		require.NoError(t, err)
		assert.Len(t, ms, producers, "%s has every producer's message", name)
	}
}

// Spawn creates an actor with its Init message in one write; spawning it
// again with the same behaviour is a no-op, with another a typed error;
// in a Commit a conflict fails the whole commit.
func testSpawn(t *testing.T, open Opener) {
	dir := t.TempDir()
	l := &createdLog{}
	s, ep := openVirtual(t, open, dir, l, "a")
	act, created, err := s.Spawn(ctx(t), mailbox.SpawnRequest{Name: "w1", Behaviour: "worker", Init: []byte("hello")})
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "worker", act.Behaviour)
	assert.Equal(t, mailbox.OriginSpawn, act.Origin)
	requireCreatedOnce(t, l, "w1")
	_, created, err = s.Spawn(ctx(t), mailbox.SpawnRequest{Name: "w1", Behaviour: "worker", Init: []byte("hello")})
	require.NoError(t, err)
	assert.False(t, created, "spawning an existing actor with its behaviour is a no-op")
	_, _, err = s.Spawn(ctx(t), mailbox.SpawnRequest{Name: "w1", Behaviour: "other"})
	var conflict *mailbox.SpawnConflictError
	require.ErrorAs(t, err, &conflict)
	assert.ErrorIs(t, err, mailbox.ErrSpawnConflict)
	assert.Equal(t, mailbox.SpawnConflictError{Name: "w1", Existing: "worker", Requested: "other"}, *conflict)
	_, created, err = s.Spawn(ctx(t), mailbox.SpawnRequest{Name: "w0", Behaviour: "worker"})
	require.NoError(t, err)
	assert.True(t, created)

	spawn := mailbox.SpawnRequest{Name: "w2", Behaviour: "worker", Init: []byte("init2")}
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"],
		Spawns:   []mailbox.SpawnRequest{spawn, spawn},
		Outgoing: []mailbox.Outgoing{{To: "w2", Message: mailbox.Message{Sender: "a", Payload: []byte("after")}}}}))
	requireCreatedOnce(t, l, "w2")
	// A redelivered batch spawns again: nothing happens.
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Spawns: []mailbox.SpawnRequest{spawn}}))

	r := send(t, s, "a", "", "m")
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq, State: &mailbox.State{Data: []byte("new")},
		Spawns: []mailbox.SpawnRequest{{Name: "w3", Behaviour: "worker"}, {Name: "w1", Behaviour: "other"}}})
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, "w1", conflict.Name)
	st, err := s.State(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, st.Data, "a commit with a conflicting spawn writes nothing")
	_, err = s.Actor(ctx(t), "w3")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor, "nor spawns anything")
	n, _ := l.count("w3")
	assert.Zero(t, n)

	check := func(s mailbox.Store) {
		t.Helper()
		ms, err := s.Read(ctx(t), "w1", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"hello"}, payloads(ms), "one Init message")
		assert.Empty(t, ms[0].Sender, "a spawn from outside has no sender")
		ms, err = s.Read(ctx(t), "w2", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"init2", "after"}, payloads(ms), "Init comes first, once")
		assert.Equal(t, "a", ms[0].Sender, "the spawning actor sends Init")
		ms, err = s.Read(ctx(t), "w0", 0, 10)
		require.NoError(t, err)
		assert.Empty(t, ms, "no Init, no message")
		act, err := s.Actor(ctx(t), "w2")
		require.NoError(t, err)
		assert.Equal(t, mailbox.OriginSpawn, act.Origin)
		ms, err = s.Read(ctx(t), "a", 0, 10)
		require.NoError(t, err)
		assert.Len(t, ms, 1, "the failed commit acked nothing")
	}
	check(s)
	require.NoError(t, s.Close())
	s, _ = openVirtual(t, open, dir, &createdLog{})
	defer s.Close()
	check(s)
}

// Remove takes everything of the actor, its own timers included, and the
// store treats the name as unknown afterwards; timers others set for it
// stay.
func testRemoveLeavesNothing(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "b")
	past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	r1 := send(t, s, "a", "id-1", "one")
	send(t, s, "a", "id-2", "two")
	_, err := s.RecordFailure(ctx(t), "a", r1.Seq+1, "boom")
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r1.Seq,
		State:       &mailbox.State{Data: []byte("state")},
		Replies:     []mailbox.Reply{{MessageID: "id-1", Payload: []byte("r")}},
		DeadLetters: []mailbox.DeadLetterRequest{{Seq: r1.Seq, Error: "dead"}},
		Timers:      []mailbox.TimerRequest{{ID: "due", To: "b", Due: past}, {ID: "later", To: "b", Due: future}}}))
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "b", Epoch: ep["b"],
		Timers: []mailbox.TimerRequest{{ID: "for-a", To: "a", Due: future.Add(time.Hour)}}}))

	require.NoError(t, s.Remove(ctx(t), "a"))
	check := func(s mailbox.Store) {
		t.Helper()
		_, err := s.Actor(ctx(t), "a")
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
		_, err = s.Enqueue(ctx(t), "a", mailbox.Message{Payload: []byte("x")})
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
		_, err = s.Read(ctx(t), "a", 0, 10)
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
		_, err = s.PendingTimers(ctx(t), "a")
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
		err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"]})
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
		requireNext(t, s, future.Add(time.Hour))
		fired, err := s.FireDue(ctx(t), time.Now(), 10)
		require.NoError(t, err)
		assert.Empty(t, fired, "the removed actor's timers are gone")
		assert.Equal(t, []string{"for-a"}, timerIDs(pending(t, s, "b")), "timers others set for it stay")
	}
	check(s)
	require.ErrorIs(t, s.Remove(ctx(t), "a"), mailbox.ErrUnknownActor)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
	_, err = s.Register(ctx(t), "a", "b")
	require.NoError(t, err)
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, ms)
	assert.Empty(t, pending(t, s, "a"))
	dls, err := s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, dls)
	st, err := s.State(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, st.Data)
	_, err = s.Lookup(ctx(t), "a", "id-2")
	assert.ErrorIs(t, err, mailbox.ErrUnknownMessage)
}
