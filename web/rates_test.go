package web

import (
	"math"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/graft-host/graft/core/control/api"
)

// snapAt is a snapshot at t of actor a having processed n messages.
func snapAt(t time.Time, n uint64) *snapshot {
	return &snapshot{at: t, st: api.Status{Actors: []api.ActorStatus{{Name: "a", Processed: n}}}}
}

// An actor's rate is an exponentially weighted average of its messages
// per second: 0 at first, a steady flow reads steady, a burst decays, and
// a count that goes down (a restart) starts again from 0.
func TestActorRates(t *testing.T) {
	e := &events{}
	t0 := time.Unix(1000, 0)
	prev := snapAt(t0, 0)
	assert.Zero(t, e.withRates(prev, nil)[0].Rate, "no rate before a second snapshot")

	var rate float64
	for i := 1; i <= 60; i++ { // a steady 10 messages a second
		s := snapAt(t0.Add(time.Duration(i)*time.Second), uint64(10*i))
		rate = e.withRates(s, prev)[0].Rate
		if i == 1 {
			assert.InDelta(t, 10*(1-math.Exp(-1.0/5)), rate, 1e-9, "one second of a 5 s average")
		}
		prev = s
	}
	assert.InDelta(t, 10, rate, 0.01, "a steady flow reads steady")

	s := snapAt(prev.at.Add(5*time.Second), 600) // idle for one window
	rate = e.withRates(s, prev)[0].Rate
	assert.InDelta(t, 10*math.Exp(-1), rate, 0.01, "an idle actor's rate decays")
	prev = s

	s = snapAt(prev.at.Add(time.Second), 3) // restarted: its count began again
	assert.Zero(t, e.withRates(s, prev)[0].Rate)
	assert.Len(t, e.rates, 1, "one rate per actor")
}

// In a cluster the actors list filters and sorts by owner, and by rate.
func TestFilterAndSortByOwnerAndRate(t *testing.T) {
	rows := []ActorRow{
		{ActorStatus: api.ActorStatus{Name: "x", Owner: "m1"}, Rate: 3},
		{ActorStatus: api.ActorStatus{Name: "y", Owner: "m0"}, Rate: 1},
		{ActorStatus: api.ActorStatus{Name: "z", Owner: "m1"}, Rate: 2},
	}
	assert.True(t, matches(rows[0], "m1"))
	assert.False(t, matches(rows[1], "m1"))
	byOwner := slices.Clone(rows)
	slices.SortStableFunc(byOwner, less("owner", false))
	assert.Equal(t, []string{"y", "x", "z"}, names(byOwner))
	byRate := slices.Clone(rows)
	slices.SortStableFunc(byRate, less("rate", true))
	assert.Equal(t, []string{"x", "z", "y"}, names(byRate))
}

func names(rows []ActorRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name
	}
	return out
}

// Every column the page offers sorts, both ways: descending is the
// reverse of ascending, names included, and a column it does not know
// sorts by name.
func TestEveryColumnSortsBothWays(t *testing.T) {
	rows := []ActorRow{
		{ActorStatus: api.ActorStatus{Name: "a", Behaviour: "b2", Module: "2.0.0", Schema: 2, Status: "running", Origin: "spawn", Owner: "m1", Depth: 3, Processed: 1, Failed: 2, Restarts: 1, DeadLetters: 0}, Rate: 1},
		{ActorStatus: api.ActorStatus{Name: "b", Behaviour: "b1", Module: "1.0.0", Schema: 1, Status: "passive", Origin: "config", Owner: "m0", Depth: 1, Processed: 3, Failed: 0, Restarts: 3, DeadLetters: 2}, Rate: 3},
		{ActorStatus: api.ActorStatus{Name: "c", Behaviour: "b3", Module: "3.0.0", Schema: 3, Status: "stopped", Origin: "virtual", Owner: "m2", Depth: 2, Processed: 2, Failed: 1, Restarts: 2, DeadLetters: 1}, Rate: 2},
	}
	for _, col := range []string{"name", "behaviour", "module", "schema", "status", "depth", "processed", "failed", "restarts", "dead", "rate", "origin", "owner", "nonsense"} {
		up, down := slices.Clone(rows), slices.Clone(rows)
		slices.SortStableFunc(up, less(col, false))
		slices.SortStableFunc(down, less(col, true))
		rev := names(down)
		slices.Reverse(rev)
		assert.Equal(t, names(up), rev, "column %s: descending is ascending reversed", col)
		if col != "name" && col != "nonsense" {
			assert.NotEqual(t, []string{"a", "b", "c"}, names(up), "column %s sorts by its values, not by name", col)
		}
	}
	q := parseQuery(httptest.NewRequest("GET", "/events?offset=9223372036854775807&limit=1000", nil))
	assert.Equal(t, maxOffset, q.offset, "an offset past any actor count is capped, so offset+limit cannot overflow")
	assert.Less(t, q.offset, q.offset+q.limit)
}
