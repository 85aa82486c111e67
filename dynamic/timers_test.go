package dynamic_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
)

// TestTimersAndSpawnsFromAPlugin: the Result of a real plugin carries the
// timers it set (a delay, an absolute time), the timers it cancelled and
// the actors it spawned; the message's timer id reaches the handler; and a
// batch handled twice (a redelivery after a crash before its commit)
// yields the same timer ids, so the store sets each timer once.
func TestTimersAndSpawnsFromAPlugin(t *testing.T) {
	cfg := config(t, "echo")
	m := start(t, cfg)
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)

	batch := dynamic.Batch{Actor: "a", State: st, Messages: []dynamic.Message{
		{Seq: 41, ID: "m41", Payload: []byte("hello"), Attempt: 1},
		{Seq: 42, ID: "m42", Payload: []byte("timers"), Attempt: 1, TimerID: "t:a:7:1"},
		{Seq: 43, ID: "m43", Payload: []byte("timers"), Attempt: 1},
	}}
	first, err := m.Handle(ctx, batch)
	require.NoError(t, err)
	for i := range batch.Messages {
		batch.Messages[i].Attempt = 2
	}
	again, err := m.Handle(ctx, batch)
	require.NoError(t, err)

	require.Empty(t, first.Results[0].Timers, "a message that sets no timer has none")
	r := first.Results[1]
	require.Empty(t, r.Err)
	require.Equal(t, "timer:t:a:7:1", string(r.Reply), "the handler sees the message's timer id")
	require.Equal(t, "timer:", string(first.Results[2].Reply))
	require.Len(t, r.Timers, 2)
	rel, abs := r.Timers[0], r.Timers[1]
	require.Equal(t, "a", rel.To)
	require.Equal(t, "tick", string(rel.Payload))
	require.Equal(t, 5*time.Second, rel.After)
	require.True(t, rel.At.IsZero(), "a delay has no absolute time")
	require.Equal(t, "other", abs.To)
	require.True(t, abs.At.Equal(time.Unix(2e9, 0)), "absolute time %v", abs.At)
	require.Zero(t, abs.After)
	now := time.Now()
	require.True(t, rel.Due(now).Equal(now.Add(5*time.Second)))
	require.Equal(t, []string{"t:old:1:1"}, r.CancelTimers)
	require.Equal(t, []dynamic.Spawn{{Name: "child/42", Behaviour: "echo", Init: []byte("hi")}}, r.Spawns)

	ids := map[string]bool{}
	for i := range batch.Messages {
		require.Equal(t, first.Results[i].Timers, again.Results[i].Timers, "message %d handled twice", i)
		require.Equal(t, first.Results[i].Spawns, again.Results[i].Spawns)
		for _, tm := range first.Results[i].Timers {
			require.NotEmpty(t, tm.ID)
			require.False(t, ids[tm.ID], "timer id %s is unique in the batch", tm.ID)
			ids[tm.ID] = true
		}
	}
	require.Len(t, ids, 4)
}

// TestOversizeTimerFailsItsMessageAlone: a timer payload over the message
// limit fails its own message with the limit's name, and its neighbours in
// the batch commit.
func TestOversizeTimerFailsItsMessageAlone(t *testing.T) {
	cfg := config(t, "echo")
	cfg.Limits.MaxMessageSize = 1024
	m := start(t, cfg)
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("bigtimer:1025", "bigtimer:1024")})
	require.NoError(t, err)
	require.Contains(t, res.Results[0].Err, "is 1025 bytes, over the 1024-byte limit (limits.max_message_size)")
	require.Empty(t, res.Results[0].Timers)
	require.Empty(t, res.Results[1].Err)
	require.Len(t, res.Results[1].Timers, 1)
	require.Len(t, res.Results[1].Timers[0].Payload, 1024)
}
