package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is the verdict of Check. Every count is a violation of a design
// guarantee when non-zero; Problems says which message or actor, so a
// failing seed can be investigated.
type Report struct {
	// Messages counts acknowledged sends plus completed calls.
	Messages int
	// Lost counts acknowledged sends not applied (G1, G2).
	Lost int
	// Duplicated counts extra applications of a send (G2).
	Duplicated int
	// Reordered counts sends applied before an earlier send of the same
	// sender to the same actor (G2).
	Reordered int
	// Misplaced counts poison messages found applied, or not found in the
	// dead letters (G7).
	Misplaced int
	// Versions counts actors whose version disagrees with their committed
	// state (G4).
	Versions int
	// Leaked counts processes, socket files and descriptors left behind
	// (G6).
	Leaked int
	// Linearizable is porcupine's verdict on the register's call history.
	Linearizable porcupine.CheckResult
	// Timers counts acknowledged timers (set by a committed handler);
	// Spawns acknowledged spawns, Destroyed acknowledged destroys. The
	// violations of timers and spawns are counted in RuntimeViolations,
	// how much of the run the strictest timer checks covered in
	// RuntimeCoverage (check_timers.go).
	Timers, Spawns, Destroyed int
	RuntimeViolations
	RuntimeCoverage
	// Canaries are the canary upgrades' outcomes (canary.go).
	Canaries CanaryCounts
	// Problems explains each violation (capped, see maxProblems).
	Problems []string
}

// maxProblems caps the explanations kept: a systematic bug would otherwise
// print one line per message.
const maxProblems = 40

func (r *Report) problemf(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// OK says whether the run kept every guarantee checked.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Misplaced == 0 &&
		r.Versions == 0 && r.Leaked == 0 && r.Linearizable == porcupine.Ok && r.none() && r.Canaries.violations() == 0
}

// Summary is the one line a run ends with.
func (r Report) Summary(seed int64, events int) string {
	lin := "yes"
	switch r.Linearizable {
	case porcupine.Illegal:
		lin = "NO"
	case porcupine.Unknown:
		lin = "unknown (checker timed out)"
	}
	s := fmt.Sprintf("chaos: seed %d, %d events, %d messages, %d lost, %d duplicated, %d reordered, %d leaked, linearizable: %s, "+
		"%d timers (%d pending across a kill -9, %d cancelled before due, %d of destroyed actors), %d spawns (%d destroyed)",
		seed, events, r.Messages, r.Lost, r.Duplicated, r.Reordered, r.Leaked, lin,
		r.Timers, r.AcrossKill, r.CancelledBeforeDue, r.OfDestroyed, r.Spawns, r.Destroyed)
	if r.Misplaced > 0 {
		s += fmt.Sprintf(", %d poison misplaced", r.Misplaced)
	}
	if r.Versions > 0 {
		s += fmt.Sprintf(", %d version mismatches", r.Versions)
	}
	return s + r.Canaries.summary() + r.counts()
}

// linearizeTimeout bounds porcupine; a history it cannot decide in time is
// reported as unknown, which fails the run (it would hide a violation).
const linearizeTimeout = 2 * time.Minute

// Check compares the recorded history with the final state.
func Check(h *History, f Final) Report {
	sends, poison, calls := h.snapshot()
	var r Report
	checkSends(&r, sends, poison, f)
	checkPoison(&r, poison, f)
	checkRuntime(&r, h.runtimeSnapshot(), f)
	checkCanaries(&r, f.Upgrades)
	for _, v := range f.Versions {
		if p := v.problem(); p != "" {
			r.Versions++
			r.problemf("%s", p)
		}
	}
	for actor, n := range f.Pending {
		if n > 0 {
			r.problemf("actor %s: %d messages still queued when the core stopped", actor, n)
		}
	}
	r.Leaked = len(f.Leaks)
	for _, l := range f.Leaks {
		r.problemf("leak: %s", l)
	}
	known := 0
	for _, c := range calls {
		if c.Known {
			known++
		}
	}
	r.Messages += known
	r.Linearizable = porcupine.CheckOperationsTimeout(registerModel(), callOps(calls), linearizeTimeout)
	if r.Linearizable == porcupine.Illegal {
		r.problemf("register history (%d calls) is not linearizable", len(calls))
	}
	return r
}

type senderKey struct{ actor, sender string }

// checkSends counts lost, duplicated and reordered sends from each actor's
// applied list.
func checkSends(r *Report, sends []SendOp, poison []PoisonOp, f Final) {
	ops := map[string]SendOp{} // by actor + payload
	for _, s := range sends {
		ops[s.Actor+"\x00"+s.Payload()] = s
		if s.Acked {
			r.Messages++
		}
	}
	poisonPayload := map[string]bool{}
	for _, p := range poison {
		poisonPayload[p.Actor+"\x00"+p.Payload] = true
	}
	seen := map[string]int{}
	actors := make([]string, 0, len(f.Applied))
	for a := range f.Applied {
		actors = append(actors, a)
	}
	sort.Strings(actors)
	for _, actor := range actors {
		last := map[senderKey]int{}
		for i, p := range f.Applied[actor] {
			key := actor + "\x00" + p
			if poisonPayload[key] {
				continue // counted by checkPoison
			}
			seen[key]++
			if seen[key] > 1 {
				r.Duplicated++
				r.problemf("actor %s: %q applied %d times (entry %d)", actor, p, seen[key], i)
				continue
			}
			if _, ok := ops[key]; !ok {
				r.Duplicated++
				r.problemf("actor %s: applied %q, which nobody sent", actor, p)
				continue
			}
			sender, n, _ := parseEntry(p)
			k := senderKey{actor, sender}
			if prev, ok := last[k]; ok && n < prev {
				r.Reordered++
				r.problemf("actor %s: %q applied after %s:%d", actor, p, sender, prev)
			}
			last[k] = max(last[k], n)
		}
	}
	for key, s := range ops {
		if s.Acked && seen[key] == 0 {
			r.Lost++
			where := "nowhere"
			for _, d := range f.DeadLetters[s.Actor] {
				if d == s.Payload() {
					where = "in the dead letters"
				}
			}
			r.problemf("actor %s: acknowledged send %q not applied (found %s)", s.Actor, s.Payload(), where)
		}
	}
}

// checkPoison: each acknowledged poison message is in its actor's dead
// letters exactly once and never applied.
func checkPoison(r *Report, poison []PoisonOp, f Final) {
	for _, p := range poison {
		applied := 0
		for _, a := range f.Applied[p.Actor] {
			if a == p.Payload {
				applied++
			}
		}
		dead := 0
		for _, d := range f.DeadLetters[p.Actor] {
			if d == p.Payload {
				dead++
			}
		}
		switch {
		case applied > 0:
			r.Misplaced++
			r.problemf("actor %s: poison %q was applied", p.Actor, p.Payload)
		case p.Acked && dead != 1:
			r.Misplaced++
			r.problemf("actor %s: poison %q is %d times in the dead letters, want once", p.Actor, p.Payload, dead)
		case !p.Acked && dead > 1:
			r.Misplaced++
			r.problemf("actor %s: unacknowledged poison %q is %d times in the dead letters", p.Actor, p.Payload, dead)
		}
	}
}

// regInput and regOutput are the register model's operation values.
type regInput struct {
	put   bool
	value string
}

type regOutput struct {
	value   string
	unknown bool
}

// registerModel is a single register whose "put V" returns the previous
// value and whose "get" returns the current one. An operation with an
// unknown outcome is accepted with either effect (porcupine places it at
// the end of time, where any effect is invisible).
func registerModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(regInput), output.(regOutput)
			if in.put {
				return out.unknown || out.value == st, in.value
			}
			return out.unknown || out.value == st, st
		},
		Equal: func(a, b any) bool { return a.(string) == b.(string) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(regInput), output.(regOutput)
			res := out.value
			if out.unknown {
				res = "?"
			}
			if in.put {
				return fmt.Sprintf("put(%s) -> %s", in.value, res)
			}
			return "get() -> " + res
		},
	}
}

// callOps converts the recorded calls for porcupine; unknown outcomes
// return at the end of time.
func callOps(calls []CallOp) []porcupine.Operation {
	ops := make([]porcupine.Operation, 0, len(calls))
	for _, c := range calls {
		op := porcupine.Operation{ClientId: c.Client, Input: regInput{put: c.Put, value: c.Value},
			Call: c.Call, Output: regOutput{value: c.Output, unknown: !c.Known}, Return: c.Return}
		if !c.Known {
			op.Return = 1<<63 - 1
		}
		ops = append(ops, op)
	}
	return ops
}

// describe joins the problems for printing.
func (r Report) describe() string { return strings.Join(r.Problems, "\n") }
