package pebblestore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// A registry record reads back as written, and a damaged one is refused.
func TestActorRecordRoundTrip(t *testing.T) {
	for _, rec := range []actorRecord{
		{},
		{ID: 7, Behaviour: "counter", Status: "stopped", Epoch: 1 << 40, CreatedAt: time.Date(2026, 12, 7, 6, 1, 2, 345, time.UTC), Origin: mailbox.OriginVirtual},
	} {
		got, err := decodeActorRecord(encodeActorRecord(rec))
		require.NoError(t, err)
		assert.Equal(t, rec, got)
	}
	v := encodeActorRecord(actorRecord{ID: 1, Behaviour: "b"})
	_, err := decodeActorRecord(v[:len(v)-2])
	assert.Error(t, err)
}

// A store whose registry holds records in the JSON of earlier versions
// opens with them as they were, and the next change rewrites them in the
// binary format.
func TestJSONActorRecordsStillRead(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, mailbox.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Register(ctx, "old", "counter")
	require.NoError(t, err)
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	old, err := json.Marshal(actorRecord{ID: 1, Behaviour: "counter", Status: "stopped", Epoch: 3, CreatedAt: created, Origin: mailbox.OriginSpawn})
	require.NoError(t, err)
	require.NoError(t, s.set(actorKey("old"), old, pebble.Sync, tierSend))
	require.NoError(t, s.Close())

	s, err = Open(dir, mailbox.Options{})
	require.NoError(t, err)
	defer s.Close()
	a, err := s.Actor(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, mailbox.Actor{Name: "old", Behaviour: "counter", Status: "stopped", Epoch: 3, CreatedAt: created, Origin: mailbox.OriginSpawn}, a)
	epoch, err := s.Claim(ctx, "old")
	require.NoError(t, err)
	assert.Greater(t, epoch, uint64(3))
	require.NoError(t, s.SetStatus(ctx, "old", "running"))
	v, closer, err := s.db.Get(actorKey("old"))
	require.NoError(t, err)
	assert.Equal(t, byte(recordV1), v[0], "rewritten in the binary format")
	require.NoError(t, closer.Close())
}
