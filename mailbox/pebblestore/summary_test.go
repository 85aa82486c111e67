package pebblestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/graft-host/graft/mailbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The clean-shutdown digest is compared with markers written by earlier
// versions, which hashed fmt's "%q %d %d %d\n" per actor: summarize must
// hash the same bytes for every name an actor can have.
func TestSummaryDigestMatchesTheFmtLines(t *testing.T) {
	actors := []actorCounters{
		{name: "plain", id: 1, acked: 2, last: 3},
		{name: `quo"te\back`, id: 2, acked: 0, last: 18446744073709551615},
		{name: "uni/ünï-码", id: 3},
		{name: "tab\tand\x7f", id: 4, acked: 9, last: 9},
	}
	got := summarize(append([]actorCounters(nil), actors...), 7, 0, cleanByName)
	h := sha256.New()
	for _, i := range []int{0, 1, 3, 2} { // by name
		a := actors[i]
		fmt.Fprintf(h, "%q %d %d %d\n", a.name, a.id, a.acked, a.last)
	}
	fmt.Fprintf(h, "history %d\n", 7)
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), got.Digest)
}

// Version 2 markers digest the same lines in id order.
func TestSummaryDigestByID(t *testing.T) {
	actors := []actorCounters{{name: "b", id: 2, acked: 1, last: 4}, {name: "a", id: 9}, {name: "c", id: 1, last: 3}}
	got := summarize(append([]actorCounters(nil), actors...), 1, 2, cleanByID)
	h := sha256.New()
	for _, i := range []int{2, 0, 1} { // by id
		a := actors[i]
		fmt.Fprintf(h, "%q %d %d %d\n", a.name, a.id, a.acked, a.last)
	}
	fmt.Fprintf(h, "history %d\n", 1)
	fmt.Fprintf(h, "timers %d\n", 2)
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), got.Digest)
	assert.Equal(t, 3, got.Actors)
	assert.EqualValues(t, 7, got.Messages)
}

// A clean-shutdown marker of version 1 (names order), as graft wrote
// before version 2, is still verified at open: a right one opens, a wrong
// one is refused.
func TestVersionOneCleanMarkerStillVerified(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		dir := t.TempDir()
		s, err := Open(dir, mailbox.Options{})
		require.NoError(t, err)
		for _, a := range []string{"x", "a", "m"} {
			_, err := s.Register(context.Background(), a, "b")
			require.NoError(t, err)
			_, err = s.Enqueue(context.Background(), a, mailbox.Message{Payload: []byte("p")})
			require.NoError(t, err)
		}
		v1 := s.loadedCounters(cleanByName)
		require.NoError(t, s.Close())
		m, err := readClean(dir)
		require.NoError(t, err)
		require.Equal(t, cleanByID, m.Version)
		m.Version, m.Counters = cleanByName, v1
		if tamper {
			flip := map[byte]string{'0': "1"}[m.Counters.Digest[0]]
			if flip == "" {
				flip = "0"
			}
			m.Counters.Digest = flip + m.Counters.Digest[1:]
		}
		require.NoError(t, writeClean(dir, m))
		s, err = Open(dir, mailbox.Options{})
		if tamper {
			var ce *mailbox.CorruptError
			require.ErrorAs(t, err, &ce)
			continue
		}
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
}
