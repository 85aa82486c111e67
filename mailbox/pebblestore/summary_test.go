package pebblestore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
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
	got := summarize(append([]actorCounters(nil), actors...), 7, 0)
	h := sha256.New()
	for _, i := range []int{0, 1, 3, 2} { // by name
		a := actors[i]
		fmt.Fprintf(h, "%q %d %d %d\n", a.name, a.id, a.acked, a.last)
	}
	fmt.Fprintf(h, "history %d\n", 7)
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), got.Digest)
}
