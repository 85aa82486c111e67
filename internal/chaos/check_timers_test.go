package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

const ms = int64(time.Millisecond)

// base is an arbitrary wall-clock instant the test histories count from.
var base = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// acked is a committed SendAfter timer set at base+set ms, acknowledged 5
// ms later.
func acked(tag, owner, to string, set int64, after time.Duration) TimerOp {
	return TimerOp{Tag: tag, Owner: owner, To: to, After: after, Sent: base + set*ms - ms,
		Acked: true, ID: "id-" + tag, SetAt: base + set*ms, AckAt: base + (set+5)*ms}
}

// fired is the fire of t applied by its target at base+at ms.
func fired(t TimerOp, n int, at int64) Fire {
	id := t.ID
	if n > 0 {
		id = fmt.Sprintf("%s/%d", t.ID, n) // a chain link's own id
	}
	return Fire{Actor: t.To, Tag: t.Tag, N: n, ID: id, From: t.Owner, At: base + at*ms}
}

// runtimeFinal is the final state of a clean run of cleanRuntime.
func runtimeFinal(fires ...Fire) Final {
	for i := range fires {
		fires[i].Index = i
	}
	return Final{Runtime: RuntimeFinal{
		Configured: []string{"tm0", "tm1"},
		Registry: map[string]RegistryEntry{
			"tm0": {ctmBehaviour, mailbox.OriginConfig}, "tm1": {ctmBehaviour, mailbox.OriginConfig},
			"sp-1": {ctmBehaviour, mailbox.OriginSpawn}, "ctm/v0": {ctmBehaviour, mailbox.OriginVirtual},
		},
		Inits: map[string][]string{"sp-1": {"sp-1"}},
		Fires: fires,
	}}
}

// cleanRuntime is a history every check accepts, with the fires that go
// with it: a timer that fired, one cancelled in time, one whose cancel
// raced its fire, a chain, two SendAt timers in due order, a virtual
// target, and a spawned actor destroyed with one timer due before and one
// after the destroy.
func cleanRuntime() (*History, []Fire) {
	h := NewHistory()
	plain := acked("a", "tm0", "tm1", 0, 100*time.Millisecond)
	cancelled := acked("b", "tm0", "tm0", 0, 300*time.Millisecond)
	raced := acked("c", "tm1", "tm1", 0, 50*time.Millisecond)
	chain := acked("d", "tm1", "tm1", 0, 50*time.Millisecond)
	chain.Links, chain.Gap = 2, 100*time.Millisecond
	at1, at2 := acked("e", "tm0", "tm1", 0, 0), acked("f", "tm1", "tm1", 0, 0)
	at1.At, at2.At = base+200*ms, base+150*ms
	virtual := acked("g", "tm0", "ctm/v0", 0, 80*time.Millisecond)
	spawnedSelf := acked("sp-1.a0", "sp-1", "sp-1", 20, 60*time.Millisecond)
	before := acked("sp-2.d0", "sp-2", "tm0", 30, 50*time.Millisecond)
	after := acked("sp-2.d1", "sp-2", "tm0", 30, 900*time.Millisecond)
	for _, op := range []TimerOp{plain, cancelled, raced, chain, at1, at2, virtual, spawnedSelf, before, after} {
		h.AddTimer(op)
	}
	h.AddCancel(CancelOp{Tag: "b", Owner: "tm0", ID: "id-b", Acked: true, AckAt: base + 10*ms})
	h.AddCancel(CancelOp{Tag: "c", Owner: "tm1", ID: "id-c", Acked: true, AckAt: base + 60*ms})
	h.AddSpawn(SpawnOp{Name: "sp-1", By: "tm0", Acked: true})
	h.AddSpawn(SpawnOp{Name: "sp-2", Acked: true})
	h.AddDestroy(DestroyOp{Name: "sp-2", Acked: true, AckAt: base + 500*ms})
	fires := []Fire{
		fired(raced, 0, 56), fired(chain, 0, 60), fired(chain, 1, 161), fired(at2, 0, 151),
		fired(at1, 0, 201), fired(chain, 2, 262), fired(plain, 0, 110),
		fired(before, 0, 90), fired(virtual, 0, 90), fired(spawnedSelf, 0, 90),
	}
	return h, fires
}

func TestCheckRuntimeClean(t *testing.T) {
	h, fires := cleanRuntime()
	r := Check(h, runtimeFinal(fires...))
	require.True(t, r.OK(), r.describe())
	require.Equal(t, 10, r.Timers)
	require.Equal(t, 2, r.Spawns)
	require.Equal(t, 1, r.Destroyed)
	require.Equal(t, RuntimeCoverage{AcrossKill: 0, CancelledBeforeDue: 1, OfDestroyed: 1}, r.RuntimeCoverage)

	h.AddKill(base + 100*ms) // after every ack, before the due times of b, e, f and sp-2.d1
	r = Check(h, runtimeFinal(fires...))
	require.Equal(t, 4, r.AcrossKill, r.describe())
}

// mutate runs the checks on the clean history with its fires changed.
func mutate(change func(f *Final), extra ...func(h *History)) Report {
	h, fires := cleanRuntime()
	for _, e := range extra {
		e(h)
	}
	f := runtimeFinal(fires...)
	change(&f)
	return Check(h, f)
}

func TestCheckRuntimeFindsEachViolation(t *testing.T) {
	byTag := func(f *Final, tag string, n int) *Fire {
		for i := range f.Runtime.Fires {
			if fr := &f.Runtime.Fires[i]; fr.Tag == tag && fr.N == n {
				return fr
			}
		}
		panic("no fire " + tag)
	}
	drop := func(f *Final, tag string, n int) {
		fr := byTag(f, tag, n)
		*fr = f.Runtime.Fires[len(f.Runtime.Fires)-1]
		f.Runtime.Fires = f.Runtime.Fires[:len(f.Runtime.Fires)-1]
	}
	add := func(f *Final, fr Fire) {
		fr.Index = len(f.Runtime.Fires)
		f.Runtime.Fires = append(f.Runtime.Fires, fr)
	}
	cases := []struct {
		name   string
		change func(f *Final)
		extra  []func(h *History)
		count  func(r Report) int
	}{
		{"lost", func(f *Final) { drop(f, "a", 0) }, nil, func(r Report) int { return r.TimersLost }},
		{"chain link lost", func(f *Final) { drop(f, "d", 2) }, nil, func(r Report) int { return r.TimersLost }},
		{"duplicated", func(f *Final) { add(f, *byTag(f, "a", 0)) }, nil, func(r Report) int { return r.TimersDuplicated }},
		{"early", func(f *Final) { byTag(f, "a", 0).At = base + 90*ms }, nil, func(r Report) int { return r.TimersEarly }},
		{"chain link early", func(f *Final) { byTag(f, "d", 1).At = base + 100*ms }, nil, func(r Report) int { return r.TimersEarly }},
		{"after cancel", func(f *Final) {
			add(f, Fire{Actor: "tm0", Tag: "b", ID: "id-b", From: "tm0", At: base + 301*ms})
		}, nil, func(r Report) int { return r.TimersAfterCancel }},
		{"after destroy", func(f *Final) {
			add(f, Fire{Actor: "tm0", Tag: "sp-2.d1", ID: "id-sp-2.d1", From: "sp-2", At: base + 940*ms})
		}, nil, func(r Report) int { return r.TimersAfterCancel }},
		{"misordered", func(f *Final) {
			e, g := byTag(f, "e", 0), byTag(f, "f", 0)
			e.Index, g.Index = g.Index, e.Index
		}, nil, func(r Report) int { return r.TimersMisordered }},
		{"pending", func(f *Final) {
			f.Runtime.Pending = []mailbox.Timer{{ID: "t:tm0:9:1", Owner: "tm0", To: "tm1", Due: time.Unix(0, base)}}
		}, nil, func(r Report) int { return r.TimersPending }},
		{"phantom fire", func(f *Final) { add(f, Fire{Actor: "tm0", Tag: "zz", ID: "x", From: "tm0"}) }, nil,
			func(r Report) int { return r.TimersWrong }},
		{"no timer id", func(f *Final) { byTag(f, "a", 0).ID = "" }, nil, func(r Report) int { return r.TimersWrong }},
		{"wrong target", func(f *Final) { byTag(f, "a", 0).Actor = "tm0" }, nil, func(r Report) int { return r.TimersWrong }},
		{"spawn missing", func(f *Final) { delete(f.Runtime.Registry, "sp-1") }, nil, func(r Report) int { return r.SpawnsWrong }},
		{"destroyed still there", func(f *Final) {
			f.Runtime.Registry["sp-2"] = RegistryEntry{ctmBehaviour, mailbox.OriginSpawn}
			f.Runtime.Inits["sp-2"] = []string{"sp-2"}
		}, nil, func(r Report) int { return r.SpawnsWrong }},
		{"init twice", func(f *Final) { f.Runtime.Inits["sp-1"] = []string{"sp-1", "sp-1"} }, nil,
			func(r Report) int { return r.SpawnsWrong }},
		{"actor nobody made", func(f *Final) {
			f.Runtime.Registry["sp-9"] = RegistryEntry{ctmBehaviour, mailbox.OriginSpawn}
		}, nil, func(r Report) int { return r.SpawnsWrong }},
		{"missing at destroy", func(*Final) {}, []func(h *History){func(h *History) {
			h.AddSpawn(SpawnOp{Name: "sp-3", Acked: true})
			h.AddDestroy(DestroyOp{Name: "sp-3", Missing: true})
		}}, func(r Report) int { return r.SpawnsWrong }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mutate(c.change, c.extra...)
			require.False(t, r.OK(), "the check missed it")
			require.Equal(t, 1, c.count(r), r.describe())
		})
	}
}

func TestCheckRuntimeUnacknowledged(t *testing.T) {
	h := NewHistory()
	// A timer whose arm was never acknowledged may be missing, or fire
	// once; its earliest due time counts from the first attempt.
	h.AddTimer(TimerOp{Tag: "u1", Owner: "tm0", To: "tm0", After: 100 * time.Millisecond, Sent: base})
	h.AddTimer(TimerOp{Tag: "u2", Owner: "tm0", To: "tm0", After: 100 * time.Millisecond, Sent: base})
	// A cancel never acknowledged: the timer may or may not fire.
	op := acked("u3", "tm0", "tm0", 0, 100*time.Millisecond)
	h.AddTimer(op)
	h.AddCancel(CancelOp{Tag: "u3", Owner: "tm0", ID: op.ID})
	final := func(at int64) Final {
		f := runtimeFinal(Fire{Actor: "tm0", Tag: "u1", ID: "t:x", From: "tm0", At: base + at*ms})
		delete(f.Runtime.Registry, "sp-1")
		delete(f.Runtime.Registry, "ctm/v0")
		return f
	}
	r := Check(h, final(100))
	require.True(t, r.OK(), r.describe())

	r = Check(h, final(98))
	require.Equal(t, 1, r.TimersEarly, r.describe())
}
