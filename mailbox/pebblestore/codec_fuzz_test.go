package pebblestore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// codecSeeds are well-formed records of every kind, the fuzzer's starting
// points besides the committed corpus in testdata/fuzz/FuzzRecordDecoders.
func codecSeeds(t testing.TB) [][]byte {
	dead, err := encodeDeadLetter(mailbox.DeadLetter{
		Message: mailbox.Message{Seq: 3, ID: "id", Sender: "s", Payload: []byte("p"), CallChain: []string{"a"},
			EnqueuedAt: time.Unix(1, 2).UTC(), Attempts: 5, LastError: "boom"},
		DeadAt: time.Unix(3, 4).UTC(),
	})
	require.NoError(t, err)
	return [][]byte{
		encodeMessage(&mailbox.Message{ID: "m1", Sender: "client", Payload: []byte("hello"), CallChain: []string{"a", "b"}, EnqueuedAt: time.Unix(0, 42)}),
		encodeMessage(&mailbox.Message{}),
		encodeMessage(&mailbox.Message{ID: "m2", Sender: "owner", Payload: []byte("tick"), TimerID: "t-1", EnqueuedAt: time.Unix(0, 43)}),
		encodeMessage(&mailbox.Message{ID: "m3", Sender: "a", Payload: []byte("traced"), TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
		encodeMessage(&mailbox.Message{TimerID: "t-2", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
		encodeTimer(&mailbox.Timer{ID: "t-1", Owner: "a", To: "account/alice", Due: time.Unix(5, 6), Payload: []byte("remind")}),
		encodeTimer(&mailbox.Timer{}),
		encodeState(&mailbox.State{Schema: 2, Module: "1.0.0", Data: []byte(`{"n":1}`)}),
		encodeFailure(failure{attempts: 3, reason: "handler crashed"}),
		encodeOutcome(outcome{kind: mailbox.OutcomeReplied, payload: []byte("ok")}),
		encodeOutcome(outcome{kind: mailbox.OutcomeDeadLettered, payload: []byte("poison")}),
		dead,
		{}, {0}, {recordV1}, {2, 1, 1}, {recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
}

// FuzzRecordDecoders feeds arbitrary bytes to every decoder of stored
// records: each must return a value or an error, never panic or allocate
// beyond the input, and whatever it accepts must encode back to a record
// that decodes to the same value.
func FuzzRecordDecoders(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMessage(7, b); err == nil {
			again, err := decodeMessage(7, encodeMessage(&m))
			require.NoError(t, err)
			require.Equal(t, m.ID, again.ID)
			require.Equal(t, m.Sender, again.Sender)
			require.Equal(t, m.Payload, again.Payload)
			require.Equal(t, m.CallChain, again.CallChain)
			require.Equal(t, m.EnqueuedAt.UnixNano(), again.EnqueuedAt.UnixNano())
			require.Equal(t, m.TimerID, again.TimerID)
			require.Equal(t, m.TraceParent, again.TraceParent)
		}
		if tm, err := decodeTimer(b); err == nil {
			again, err := decodeTimer(encodeTimer(&tm))
			require.NoError(t, err)
			require.Equal(t, tm, again)
		}
		if s, err := decodeState(b); err == nil {
			again, err := decodeState(encodeState(&s))
			require.NoError(t, err)
			require.Equal(t, s, again)
		}
		if fl, err := decodeFailure(b); err == nil {
			again, err := decodeFailure(encodeFailure(fl))
			require.NoError(t, err)
			require.Equal(t, fl, again)
		}
		if o, err := decodeOutcome(b); err == nil {
			again, err := decodeOutcome(encodeOutcome(o))
			require.NoError(t, err)
			require.Equal(t, o, again)
		}
		if d, err := decodeDeadLetter(b); err == nil {
			enc, err := encodeDeadLetter(d)
			require.NoError(t, err)
			_, err = decodeDeadLetter(enc)
			require.NoError(t, err)
		}
	})
}

// TestDecodersRefuseDamage: truncated records, trailing bytes, values out
// of range and unknown formats are errors.
func TestDecodersRefuseDamage(t *testing.T) {
	msg := encodeMessage(&mailbox.Message{ID: "m1", Payload: []byte("hello")})
	for i := 0; i < len(msg); i++ {
		_, err := decodeMessage(1, msg[:i])
		require.Error(t, err, "a message cut to %d of %d bytes decoded", i, len(msg))
	}
	_, err := decodeMessage(1, append(append([]byte{}, msg...), 0))
	require.ErrorContains(t, err, "after its last field")
	// The timer id is an optional trailing field: a record without it (as
	// written before timers) decodes; one cut inside it, or with an empty
	// one, does not.
	withTimer := encodeMessage(&mailbox.Message{ID: "m1", Payload: []byte("hello"), TimerID: "t-9"})
	m, err := decodeMessage(1, withTimer)
	require.NoError(t, err)
	require.Equal(t, "t-9", m.TimerID)
	for i := len(msg) + 1; i < len(withTimer); i++ {
		_, err := decodeMessage(1, withTimer[:i])
		require.Error(t, err, "a message cut to %d of %d bytes inside its timer id decoded", i, len(withTimer))
	}
	_, err = decodeMessage(1, append(append([]byte{}, msg...), tagTimerID, 0))
	require.ErrorContains(t, err, "empty timer id")
	tm := encodeTimer(&mailbox.Timer{ID: "t", Owner: "a", To: "b", Due: time.Unix(1, 0), Payload: []byte("p")})
	for i := 0; i < len(tm); i++ {
		_, err := decodeTimer(tm[:i])
		require.Error(t, err, "a timer cut to %d of %d bytes decoded", i, len(tm))
	}
	_, err = decodeState([]byte{recordV1, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0})
	require.ErrorContains(t, err, "32 bits")
	_, err = decodeOutcome([]byte{recordV1, 9, 0})
	require.ErrorContains(t, err, "outcome kind 9")
	_, err = decodeFailure([]byte{7, 1, 0})
	require.ErrorContains(t, err, "record format 7")
}
