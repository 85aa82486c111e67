package upgrade

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A canary upgrade moves a share of the actors first, lets both versions
// serve side by side for a bake window, compares the two groups, and then
// promotes (moves the rest) or rolls the canary back by itself:
//
//	JOURNAL  op with its canary group and phase "canary"     durable: journal.json
//	  │
//	MOVE the canary group (moveGroups, as any upgrade)
//	  │
//	BAKE     phase "baking", bake_until                     durable: journal.json
//	  │      ── failpoint "baking"
//	  │      every 100 ms: the canary's failure and dead-letter rates
//	  │      against the old group's; over the gate with enough messages:
//	  │      roll back at once. At bake_until: the latency gate too.
//	  │      `--promote` / `--abort` end it early.
//	  ├── promote: phase "promoting"  → MOVE the rest → FINISH "completed"
//	  └── roll back: phase "rolling back" → MOVE BACK the canary with the
//	      new version's down-migration → history "rolled back" with the
//	      numbers; the messages the canary dead-lettered during the bake
//	      are requeued, to run again on the old version.
//
// A core killed in any phase resumes it with the same groups: the canary
// group is in the journal, and each actor's committed state says which
// version it is on. A bake resumed after a restart starts its window
// again, since the counts were in memory.

// Phase is where a canary upgrade is (Op.Canary.Phase, shown by status).
type Phase string

// The phases of a canary upgrade, in order.
const (
	// PhaseCanary: the canary group is being moved.
	PhaseCanary Phase = "canary"
	// PhaseBaking: both versions serve; the health gates are watched.
	PhaseBaking Phase = "baking"
	// PhasePromoting: the canary passed; the rest are being moved.
	PhasePromoting Phase = "promoting"
	// PhaseRollingBack: the canary failed a gate (or was aborted); it is
	// being moved back to the old version.
	PhaseRollingBack Phase = "rolling back"
)

// FailpointBaking: a canary upgrade's canary group moved and its bake
// began (journaled). Not in Failpoints: only a canary upgrade reaches it.
const FailpointBaking Failpoint = "baking"

// Canary says how an upgrade starts small: which actors move first, how
// long both versions then serve side by side, and what decides.
type Canary struct {
	// Share is the fraction (0 < Share < 1) of the actors moved first,
	// picked by a hash of their names (so the same actors for the same
	// names); at least one.
	Share float64 `json:"share,omitempty"`
	// Actors, if set instead, are the canary group.
	Actors []string `json:"actors,omitempty"`
	// Bake is how long both versions serve before the decision.
	Bake time.Duration `json:"bake"`
	// Gates decide.
	Gates Gates `json:"gates"`
}

// Gates are a canary's health thresholds against the old version's
// actors over the same window. Failures are failed attempts (errors,
// panics, module crashes and hangs; terminal errors are answers, not
// failures) over attempts.
type Gates struct {
	// FailureRateIncrease is how much higher (in absolute terms: 0.01 is
	// one percentage point) the canary's failure rate, and its
	// dead-letter rate, may be (default 0.01).
	FailureRateIncrease float64 `json:"failure_rate_increase,omitempty"`
	// P99Ratio is how many times the old group's handle latency p99 the
	// canary's may be (default 1.5).
	P99Ratio float64 `json:"p99_ratio,omitempty"`
	// MinMessages is how many attempts the canary must have made before
	// a gate can fail it, and before its latency is compared (default 20).
	MinMessages int `json:"min_messages,omitempty"`
	// Inconclusive is what a bake whose canary made fewer than MinMessages
	// attempts ends in, no gate having been able to judge it: promote
	// (the default), roll back, or hold (see the Inconclusive constants).
	Inconclusive string `json:"inconclusive,omitempty"`
}

// What a bake with too little traffic to judge ends in (Gates.Inconclusive).
const (
	// InconclusivePromote promotes the canary, its record saying it was
	// not judged: a quiet behaviour is still upgraded unattended.
	InconclusivePromote = "promote"
	// InconclusiveRollback rolls the canary back: only a canary shown no
	// worse is promoted.
	InconclusiveRollback = "rollback"
	// InconclusiveHold keeps the canary baking past its window, judged at
	// every tick, until it has made MinMessages attempts and the gates
	// decide, or an operator promotes or aborts it (graft upgrade
	// --promote, --abort), as Argo Rollouts pauses an inconclusive run for
	// a person's judgement.
	InconclusiveHold = "hold"
)

// withDefaults fills the unset gates.
func (g Gates) withDefaults() Gates {
	if g.FailureRateIncrease <= 0 {
		g.FailureRateIncrease = 0.01
	}
	if g.P99Ratio <= 0 {
		g.P99Ratio = 1.5
	}
	if g.MinMessages <= 0 {
		g.MinMessages = 20
	}
	if g.Inconclusive == "" {
		g.Inconclusive = InconclusivePromote
	}
	return g
}

// ParseCanary reads a `--canary` value: a share ("10%") or a comma-
// separated list of actor names.
func ParseCanary(s string, bake time.Duration) (*Canary, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty canary: give a share such as 10% or actor names separated by commas")
	}
	if bake <= 0 {
		return nil, fmt.Errorf("canary %q needs a bake time above zero (--bake 60s): how long both versions serve before the decision", s)
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f >= 100 {
			return nil, fmt.Errorf("canary share %q: want a percentage above 0 and below 100, such as 10%%", s)
		}
		return &Canary{Share: f / 100, Bake: bake}, nil
	}
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return &Canary{Actors: names, Bake: bake}, nil
}

// String is how logs and the history show the canary: "10%", "1 actor" or
// "3 actors".
func (c *Canary) String() string {
	switch len(c.Actors) {
	case 0:
	case 1:
		return "1 actor"
	default:
		return fmt.Sprintf("%d actors", len(c.Actors))
	}
	return strconv.FormatFloat(c.Share*100, 'f', -1, 64) + "%"
}

// pick chooses the canary group among actors: the named ones (each must
// be an actor of the behaviour), or the Share with the lowest hashes of
// their names.
func (c *Canary) pick(behaviour string, actors []string) ([]string, error) {
	if len(c.Actors) > 0 {
		for _, a := range c.Actors {
			if !slices.Contains(actors, a) {
				hint := ""
				if _, err := strconv.ParseFloat(a, 64); err == nil {
					hint = fmt.Sprintf(" (a share is written with %%, such as %s%%)", a)
				}
				return nil, fmt.Errorf("canary actor %q is not an actor of behaviour %q%s", a, behaviour, hint)
			}
		}
		if len(c.Actors) == len(actors) {
			return nil, fmt.Errorf("the canary names every actor of %q: nothing would stay on the old version to compare it with", behaviour)
		}
		return slices.Clone(c.Actors), nil
	}
	if len(actors) < 2 {
		return nil, fmt.Errorf("behaviour %q has %d actor(s): a canary needs one to move and one to compare it with", behaviour, len(actors))
	}
	n := min(max(1, int(math.Ceil(c.Share*float64(len(actors))))), len(actors)-1)
	byHash := slices.Clone(actors)
	slices.SortFunc(byHash, func(a, b string) int { return cmpUint(nameHash(a), nameHash(b)) })
	group := byHash[:n]
	slices.Sort(group)
	return group, nil
}

func nameHash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CanaryState is a canary upgrade's journaled progress (Op.Canary).
type CanaryState struct {
	Plan Canary `json:"plan"`
	// Group is the canary group, chosen when the op was journaled.
	Group []string `json:"group"`
	Phase Phase    `json:"phase"`
	// BakeUntil is when the bake decides (set when it begins).
	BakeUntil time.Time `json:"bake_until,omitzero"`
	// Verdict says what decided (set with the promoting or rolling back
	// phase), or, in the baking phase, why a bake past its window holds
	// (Gates.Inconclusive hold: too little traffic to judge; the op then
	// holds the behaviour, no other upgrade of it starts, until the gates
	// or an operator decide).
	Verdict string `json:"verdict,omitempty"`
}

// verdict is a judgement of the canary against the old group.
type verdict struct {
	fail   bool   // a gate failed: roll back
	reason string // the numbers that decided, for the history and the log
	// inconclusive: no gate failed, on too little traffic to judge.
	inconclusive bool
}

// judge compares the canary's counts with the old group's. Before the end
// of the bake (final false) only the failure and dead-letter gates can
// fail it, and only once the canary has MinMessages attempts; at the end
// the latency gate is checked too, when both groups have MinMessages.
func (g Gates) judge(canary, old groupCounts, final bool) verdict {
	g = g.withDefaults()
	attempts := canary.handled + canary.failed
	// The summary sorts the latencies: made only for a verdict that ends
	// the bake, not at every tick.
	sum := func() string { return fmt.Sprintf("canary: %s; old version: %s", canary.describe(), old.describe()) }
	if attempts >= int64(g.MinMessages) {
		if cr, or := canary.failureRate(), old.failureRate(); cr > or+g.FailureRateIncrease {
			return verdict{true, fmt.Sprintf("failure rate %s against %s, over the +%s allowed (%s)", pct(cr), pct(or), pct(g.FailureRateIncrease), sum()), false}
		}
		if cr, or := canary.deadRate(), old.deadRate(); cr > or+g.FailureRateIncrease {
			return verdict{true, fmt.Sprintf("dead-letter rate %s against %s, over the +%s allowed (%s)", pct(cr), pct(or), pct(g.FailureRateIncrease), sum()), false}
		}
	}
	if !final {
		return verdict{false, "", false}
	}
	if canary.handled >= int64(g.MinMessages) && old.handled >= int64(g.MinMessages) {
		if cp, op := canary.p99(), old.p99(); float64(cp) > g.P99Ratio*float64(op) {
			return verdict{true, fmt.Sprintf("handle latency p99 %s against %s, over the %gx allowed (%s)", cp, op, g.P99Ratio, sum()), false}
		}
	}
	if attempts < int64(g.MinMessages) {
		return verdict{false, fmt.Sprintf("no gate failed, on too little traffic to judge (%d attempts, %d needed; %s)", attempts, g.MinMessages, sum()), true}
	}
	return verdict{false, "every gate passed (" + sum() + ")", false}
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) + "%" }
