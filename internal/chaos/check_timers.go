package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// RuntimeViolations counts the violations of durable timers and of actors
// made at run time (G2: timers and spawns are part of a handler's
// exactly-once effect). Each is a bug when non-zero.
type RuntimeViolations struct {
	// TimersLost counts committed timers (not cancelled, owner not
	// destroyed) that never fired, and chain links that never fired
	// although the link before them did.
	TimersLost int
	// TimersDuplicated counts extra fires of a timer.
	TimersDuplicated int
	// TimersEarly counts fires applied before the earliest time the timer
	// can have come due.
	TimersEarly int
	// TimersMisordered counts pairs of SendAt timers to one actor, both
	// committed before either came due, applied against their due order.
	TimersMisordered int
	// TimersAfterCancel counts fires of timers due only after their cancel,
	// or their owner's destroy, was acknowledged.
	TimersAfterCancel int
	// TimersPending counts timers still pending in the store after the run
	// (every timer of the run is due within seconds).
	TimersPending int
	// TimersWrong counts fires nobody set, fires applied by another actor
	// than the timer's target, and fires whose message carried no TimerID,
	// another one than the timer's, or another sender than its owner.
	TimersWrong int
	// SpawnsWrong counts acknowledged spawns missing from the registry, an
	// actor still there after its destroy was acknowledged, a spawned
	// actor whose init message was applied other than once, actors nobody
	// made, and dead letters of the "ctm" actors.
	SpawnsWrong int
}

// RuntimeCoverage says how often the run met the cases the timer checks
// are strictest about, so a run that never met them shows.
type RuntimeCoverage struct {
	// AcrossKill counts committed timers that came due only after a kill
	// -9 of the core that followed their commit: pending across it.
	AcrossKill int
	// CancelledBeforeDue counts timers whose cancel was acknowledged
	// before they can have come due: they must never fire.
	CancelledBeforeDue int
	// OfDestroyed counts timers due only after their owner's destroy was
	// acknowledged: they must never fire.
	OfDestroyed int
}

func (v RuntimeViolations) none() bool { return v == RuntimeViolations{} }

// counts lists the non-zero counts for the run's summary line.
func (v RuntimeViolations) counts() string {
	var b strings.Builder
	for _, c := range []struct {
		n    int
		what string
	}{
		{v.TimersLost, "timers lost"}, {v.TimersDuplicated, "timer fires duplicated"}, {v.TimersEarly, "timers early"},
		{v.TimersMisordered, "timer pairs out of due order"}, {v.TimersAfterCancel, "timers fired after a cancel or destroy"},
		{v.TimersPending, "timers still pending"}, {v.TimersWrong, "wrong timer fires"}, {v.SpawnsWrong, "spawn violations"},
	} {
		if c.n > 0 {
			fmt.Fprintf(&b, ", %d %s", c.n, c.what)
		}
	}
	return b.String()
}

// timerSlack is the clock granularity the timing checks allow.
const timerSlack = int64(time.Millisecond)

type fireKey struct {
	tag string
	n   int
}

// runtimeIndex is the history and final state arranged for the checks.
type runtimeIndex struct {
	timers    map[string]TimerOp   // by tag
	cancels   map[string]CancelOp  // by the cancelled timer's tag
	destroyed map[string]DestroyOp // destroys attempted, by actor
	fires     map[fireKey][]Fire
}

func indexRuntime(ops runtimeOps, rt RuntimeFinal) runtimeIndex {
	ix := runtimeIndex{timers: map[string]TimerOp{}, cancels: map[string]CancelOp{},
		destroyed: map[string]DestroyOp{}, fires: map[fireKey][]Fire{}}
	for _, t := range ops.timers {
		ix.timers[t.Tag] = t
	}
	for _, c := range ops.cancels {
		ix.cancels[c.Tag] = c
	}
	for _, d := range ops.destroys {
		ix.destroyed[d.Name] = d
	}
	for _, f := range rt.Fires {
		k := fireKey{f.Tag, f.N}
		ix.fires[k] = append(ix.fires[k], f)
	}
	return ix
}

// checkRuntime checks timers and actors made at run time against the
// committed states: see RuntimeViolations for what counts.
func checkRuntime(r *Report, ops runtimeOps, f Final) {
	ix := indexRuntime(ops, f.Runtime)
	for _, t := range ops.timers {
		if t.Acked {
			r.Timers++
			countCoverage(r, t, ix, ops.kills)
		}
		checkTimer(r, t, ix)
	}
	checkFires(r, ix)
	checkDueOrder(r, ix, f.Runtime.Fires)
	for _, t := range f.Runtime.Pending {
		r.TimersPending++
		r.problemf("timer %s of %s to %s (%q, due %s) still pending after the run", t.ID, t.Owner, t.To, t.Payload, t.Due.Format(time.RFC3339Nano))
	}
	checkSpawns(r, ops, ix, f)
}

// countCoverage adds the committed timer t to the coverage counts.
func countCoverage(r *Report, t TimerOp, ix runtimeIndex, kills []int64) {
	due := t.earliestDue()
	for _, k := range kills {
		if t.AckAt < k && k < due {
			r.AcrossKill++
			break
		}
	}
	if c, ok := ix.cancels[t.Tag]; ok && c.Acked && due > c.AckAt+timerSlack {
		r.CancelledBeforeDue++
	}
	if d, ok := ix.destroyed[t.Owner]; ok && d.Acked && due > d.AckAt+timerSlack {
		r.OfDestroyed++
	}
}

// checkTimer checks one armed timer (and the links of its chain): fired
// once unless cancelled or its owner destroyed, where it was sent, with its
// id, not before it was due, and not at all when due after an
// acknowledged cancel or destroy.
func checkTimer(r *Report, t TimerOp, ix runtimeIndex) {
	fs := ix.fires[fireKey{t.Tag, 0}]
	c, cancelTried := ix.cancels[t.Tag]
	d, destroyTried := ix.destroyed[t.Owner]
	due := t.earliestDue()
	if len(fs) == 0 {
		if t.Acked && !cancelTried && !destroyTried {
			r.TimersLost++
			r.problemf("timer %s (%s, set by %s for %s) was committed but never fired", t.Tag, t.ID, t.Owner, t.To)
		}
		return
	}
	fr := fs[0]
	switch {
	case fr.Actor != t.To:
		r.TimersWrong++
		r.problemf("timer %s for %s was applied by %s", t.Tag, t.To, fr.Actor)
	case t.Acked && t.ID != "" && fr.ID != "" && fr.ID != t.ID: // no id at all: see checkFires
		r.TimersWrong++
		r.problemf("timer %s: its message carried timer id %q, the handler that set it returned %q", t.Tag, fr.ID, t.ID)
	case fr.From != t.Owner:
		r.TimersWrong++
		r.problemf("timer %s: its message came from %q, want its owner %s", t.Tag, fr.From, t.Owner)
	}
	if fr.At < due-timerSlack {
		r.TimersEarly++
		r.problemf("timer %s applied at %s, %s before it can have been due (%s)", t.Tag, nanoTime(fr.At), time.Duration(due-fr.At), nanoTime(due))
	}
	if cancelTried && c.Acked && due > c.AckAt+timerSlack {
		r.TimersAfterCancel++
		r.problemf("timer %s fired although its cancel was acknowledged at %s, before it was due (%s)", t.Tag, nanoTime(c.AckAt), nanoTime(due))
	}
	if destroyTried && d.Acked && due > d.AckAt+timerSlack {
		r.TimersAfterCancel++
		r.problemf("timer %s fired although its owner %s was destroyed at %s, before it was due (%s)", t.Tag, t.Owner, nanoTime(d.AckAt), nanoTime(due))
	}
	checkChain(r, t, ix)
}

// checkChain: each link of a chain that fired committed the next one, so
// that one must fire too, on the owner, no earlier than Gap after it.
func checkChain(r *Report, t TimerOp, ix runtimeIndex) {
	prev := ix.fires[fireKey{t.Tag, 0}]
	for n := 1; n <= t.Links && len(prev) > 0; n++ {
		cur := ix.fires[fireKey{t.Tag, n}]
		if len(cur) == 0 {
			r.TimersLost++
			r.problemf("chain %s on %s: link %d never fired after link %d did", t.Tag, t.Owner, n, n-1)
			return
		}
		switch {
		case cur[0].Actor != t.Owner:
			r.TimersWrong++
			r.problemf("chain %s: link %d was applied by %s, want %s", t.Tag, n, cur[0].Actor, t.Owner)
		case cur[0].At < prev[0].At+int64(t.Gap)-timerSlack:
			r.TimersEarly++
			r.problemf("chain %s: link %d applied %s after link %d, want at least %s", t.Tag, n, time.Duration(cur[0].At-prev[0].At), n-1, t.Gap)
		}
		prev = cur
	}
}

// checkFires looks at every applied fire: of a timer someone set, once,
// with a timer id no other fire carried.
func checkFires(r *Report, ix runtimeIndex) {
	keys := make([]fireKey, 0, len(ix.fires))
	for k := range ix.fires {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b fireKey) int {
		if c := strings.Compare(a.tag, b.tag); c != 0 {
			return c
		}
		return a.n - b.n
	})
	ids := map[string]fireKey{}
	for _, k := range keys {
		fs := ix.fires[k]
		if t, ok := ix.timers[k.tag]; !ok || k.n > t.Links {
			r.TimersWrong++
			r.problemf("actor %s applied a fire of timer %s link %d, which nobody set", fs[0].Actor, k.tag, k.n)
		}
		if len(fs) > 1 {
			r.TimersDuplicated += len(fs) - 1
			r.problemf("timer %s link %d fired %d times (ids %s)", k.tag, k.n, len(fs), fireIDs(fs))
		}
		for _, f := range fs {
			if f.ID == "" {
				r.TimersWrong++
				r.problemf("actor %s: the message of timer %s link %d carried no TimerID", f.Actor, k.tag, k.n)
				continue
			}
			id := f.From + "\x00" + f.ID
			if other, dup := ids[id]; dup && other != k {
				r.TimersWrong++
				r.problemf("timer id %s of %s carried by the fires of %s link %d and %s link %d", f.ID, f.From, other.tag, other.n, k.tag, k.n)
			}
			ids[id] = k
		}
	}
}

func fireIDs(fs []Fire) string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return strings.Join(out, ", ")
}

// checkDueOrder: of two SendAt timers to the same actor, both committed
// before the earlier one was due, the earlier-due one is applied first
// (the core fires due timers earliest first, into the mailbox that orders
// them) — also when both came due while the core was down.
func checkDueOrder(r *Report, ix runtimeIndex, fires []Fire) {
	byActor := map[string][]Fire{}
	for _, f := range fires {
		if t, ok := ix.timers[f.Tag]; ok && f.N == 0 && t.At != 0 && t.Acked && len(ix.fires[fireKey{f.Tag, 0}]) == 1 {
			byActor[f.Actor] = append(byActor[f.Actor], f)
		}
	}
	for _, fs := range byActor {
		slices.SortFunc(fs, func(a, b Fire) int { return a.Index - b.Index })
		for i := range fs {
			a := ix.timers[fs[i].Tag]
			for _, fb := range fs[i+1:] {
				b := ix.timers[fb.Tag]
				if b.At < a.At && a.AckAt <= b.At && b.AckAt <= b.At {
					r.TimersMisordered++
					r.problemf("actor %s applied timer %s (due %s) before %s (due %s), both set before either was due",
						fb.Actor, a.Tag, nanoTime(a.At), b.Tag, nanoTime(b.At))
				}
			}
		}
	}
}

// checkSpawns: every acknowledged spawn is in the registry once, as a
// spawned "ctm" actor that applied its init message once, unless a destroy
// of it was attempted (an acknowledged one leaves nothing); every actor of
// the registry was configured, spawned or targeted as a virtual actor; no
// "ctm" actor has dead letters.
func checkSpawns(r *Report, ops runtimeOps, ix runtimeIndex, f Final) {
	rt := f.Runtime
	spawned := map[string]bool{}
	for _, s := range ops.spawns {
		spawned[s.Name] = true
		if s.Acked {
			r.Spawns++
		}
		entry, exists := rt.Registry[s.Name]
		d, destroyTried := ix.destroyed[s.Name]
		if d.Acked {
			r.Destroyed++
		}
		switch {
		case d.Acked && exists:
			r.SpawnsWrong++
			r.problemf("actor %s is in the registry although its destroy was acknowledged", s.Name)
		case s.Acked && d.Missing:
			r.SpawnsWrong++
			r.problemf("actor %s: acknowledged spawn (by %q) not found when it was destroyed", s.Name, s.By)
		case s.Acked && !exists && !destroyTried:
			r.SpawnsWrong++
			r.problemf("actor %s: acknowledged spawn (by %q) is not in the registry", s.Name, s.By)
		}
		if !exists {
			continue
		}
		if entry.Behaviour != ctmBehaviour || entry.Origin != mailbox.OriginSpawn {
			r.SpawnsWrong++
			r.problemf("spawned actor %s has behaviour %q and origin %q", s.Name, entry.Behaviour, entry.Origin)
		}
		if inits := rt.Inits[s.Name]; len(inits) != 1 || inits[0] != s.Name {
			r.SpawnsWrong++
			r.problemf("spawned actor %s applied its init message %d times (%q), want once", s.Name, len(inits), inits)
		}
	}
	checkRegistry(r, ix, spawned, f)
}

// checkRegistry: no actor nobody made, virtual ones created as virtual,
// and no dead letters in the "ctm" actors.
func checkRegistry(r *Report, ix runtimeIndex, spawned map[string]bool, f Final) {
	rt := f.Runtime
	targets := map[string]bool{}
	for _, t := range ix.timers {
		targets[t.To] = true
	}
	names := make([]string, 0, len(rt.Registry))
	for name := range rt.Registry {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e := rt.Registry[name]
		switch {
		case slices.Contains(rt.Configured, name), spawned[name]:
		case targets[name] && strings.HasPrefix(name, ctmBehaviour+"/"):
			if e.Origin != mailbox.OriginVirtual || e.Behaviour != ctmBehaviour {
				r.SpawnsWrong++
				r.problemf("virtual actor %s has behaviour %q and origin %q", name, e.Behaviour, e.Origin)
			}
		default:
			r.SpawnsWrong++
			r.problemf("actor %s (behaviour %q, origin %q) is in the registry, but nobody made it", name, e.Behaviour, e.Origin)
		}
		if e.Behaviour == ctmBehaviour && len(f.DeadLetters[name]) > 0 {
			r.SpawnsWrong++
			r.problemf("actor %s has %d dead letters (%q)", name, len(f.DeadLetters[name]), f.DeadLetters[name])
		}
	}
}

// nanoTime formats Unix nanoseconds for a problem line.
func nanoTime(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000000") }
