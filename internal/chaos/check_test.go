package chaos

import (
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// history builds a history of acked sends a:0..n-1 from sender s to actor kv.
func sendHistory(n int) *History {
	h := NewHistory()
	for i := 0; i < n; i++ {
		h.AddSend(SendOp{Actor: "kv", Sender: "s", N: i, Acked: true})
	}
	return h
}

func TestCheckClean(t *testing.T) {
	h := sendHistory(3)
	h.AddSend(SendOp{Actor: "kv", Sender: "s", N: 3}) // unacked, never applied: fine
	h.AddPoison(PoisonOp{Actor: "kv", Payload: "poison:1", Acked: true})
	h.AddCall(CallOp{Client: 0, Put: true, Value: "x", Output: "", Known: true, Call: 1, Return: 2})
	h.AddCall(CallOp{Client: 1, Put: false, Output: "x", Known: true, Call: 3, Return: 4})
	h.AddCall(CallOp{Client: 1, Put: true, Value: "y", Call: 5}) // outcome unknown
	r := Check(h, Final{
		Applied:     map[string][]string{"kv": {"s:0", "s:1", "s:2"}},
		DeadLetters: map[string][]string{"kv": {"poison:1"}},
		Versions: []ActorVersion{{Actor: "kv", RecordModule: "2.0.0", RecordSchema: 2, StateModule: "2.0.0",
			StateSchema: 2, HasState: true, Allowed: map[string]uint32{"1.0.0": 1, "2.0.0": 2}}},
	})
	require.True(t, r.OK(), r.describe())
	require.Equal(t, 5, r.Messages)
	require.Equal(t, "chaos: seed 7, 3 events, 5 messages, 0 lost, 0 duplicated, 0 reordered, 0 leaked, linearizable: yes, 0 timers (0 pending across a kill -9, 0 cancelled before due, 0 of destroyed actors), 0 spawns (0 destroyed), canaries: 0 good promoted, 0 bad rolled back",
		r.Summary(7, 3))
}

// A bad version promoted, or a good one rolled back, fails the run; the
// right outcomes (also after a core restart) are counted.
func TestCheckCanaries(t *testing.T) {
	rec := func(id uint64, to, outcome string) mailbox.UpgradeRecord {
		return mailbox.UpgradeRecord{ID: id, Kind: "upgrade", To: to, Outcome: outcome, Canary: "50% for 3s: ..."}
	}
	r := Check(NewHistory(), Final{Upgrades: []mailbox.UpgradeRecord{
		rec(1, "2.0.0 (aa)", "completed"), rec(2, "2.0.1 (bb)", "rolled back"),
		rec(3, "2.0.0 (aa)", "completed after a core restart"),
		{ID: 4, Kind: "upgrade", To: "2.0.1 (bb)", Outcome: "completed"}, // not a canary
	}})
	require.True(t, r.OK(), r.describe())
	require.Equal(t, CanaryCounts{GoodPromoted: 2, BadRolledBack: 1}, r.Canaries)

	r = Check(NewHistory(), Final{Upgrades: []mailbox.UpgradeRecord{rec(1, "2.0.1 (bb)", "completed"), rec(2, "2.0.0 (aa)", "rolled back")}})
	require.False(t, r.OK())
	require.Equal(t, CanaryCounts{BadPromoted: 1, GoodRolledBack: 1}, r.Canaries)
	require.Contains(t, r.describe(), "canary upgrade 1 to the flaky 2.0.1 (bb) was promoted")
	require.Contains(t, r.describe(), "canary upgrade 2 to the healthy 2.0.0 (aa) was rolled back")
}

func TestCheckFindsEachViolation(t *testing.T) {
	h := sendHistory(5)
	h.AddPoison(PoisonOp{Actor: "kv", Payload: "poison:1", Acked: true})
	r := Check(h, Final{
		// s:1 lost, s:3 twice, s:4 before s:2, poison applied.
		Applied: map[string][]string{"kv": {"s:0", "s:4", "s:2", "s:3", "s:3", "poison:1"}},
		Versions: []ActorVersion{{Actor: "kv", RecordModule: "1.0.0", RecordSchema: 1, StateModule: "2.0.0",
			StateSchema: 2, HasState: true, Allowed: map[string]uint32{"1.0.0": 1, "2.0.0": 2}}},
		Leaks: []string{"plugin process 123 outlived the core"},
	})
	require.False(t, r.OK())
	require.Equal(t, 1, r.Lost, r.describe())
	require.Equal(t, 1, r.Duplicated, r.describe())
	require.Equal(t, 2, r.Reordered, r.describe()) // s:2 and s:3 after s:4
	require.Equal(t, 1, r.Misplaced, r.describe())
	require.Equal(t, 1, r.Versions, r.describe())
	require.Equal(t, 1, r.Leaked)
}

func TestCheckPhantomAndMissingPoison(t *testing.T) {
	h := sendHistory(1)
	h.AddPoison(PoisonOp{Actor: "kv", Payload: "poison:9", Acked: true})
	r := Check(h, Final{Applied: map[string][]string{"kv": {"s:0", "x:1"}}})
	require.Equal(t, 1, r.Duplicated, r.describe()) // applied, never sent
	require.Equal(t, 1, r.Misplaced, r.describe())  // poison not dead-lettered
}

func TestLinearizability(t *testing.T) {
	h := NewHistory()
	// put(a) completes, then a get that does not overlap it returns "":
	// stale read, not linearizable.
	h.AddCall(CallOp{Client: 0, Put: true, Value: "a", Output: "", Known: true, Call: 0, Return: 10})
	h.AddCall(CallOp{Client: 1, Output: "", Known: true, Call: 20, Return: 30})
	require.Equal(t, porcupine.Illegal, Check(h, Final{}).Linearizable)

	h = NewHistory()
	// Overlapping put and get: the get may see either value.
	h.AddCall(CallOp{Client: 0, Put: true, Value: "a", Output: "", Known: true, Call: 0, Return: 30})
	h.AddCall(CallOp{Client: 1, Output: "", Known: true, Call: 10, Return: 20})
	// A put whose outcome is unknown may or may not have happened.
	h.AddCall(CallOp{Client: 2, Put: true, Value: "b", Call: 40})
	h.AddCall(CallOp{Client: 1, Output: "b", Known: true, Call: 50, Return: 60})
	require.Equal(t, porcupine.Ok, Check(h, Final{}).Linearizable)

	h = NewHistory()
	// A duplicated put shows as a wrong previous value.
	h.AddCall(CallOp{Client: 0, Put: true, Value: "a", Output: "", Known: true, Call: 0, Return: 10})
	h.AddCall(CallOp{Client: 0, Put: true, Value: "b", Output: "b", Known: true, Call: 20, Return: 30})
	require.Equal(t, porcupine.Illegal, Check(h, Final{}).Linearizable)
}
