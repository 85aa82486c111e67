package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/mailbox"
)

// Canary upgrades under chaos. One upgrade event in four from version 1
// is a canary of half the "ckv" actors to the good version 2, one in four
// a canary to the flaky build 2.0.1, which fails about half its messages.
// The check (checkCanaries) is that every bad canary ends rolled back and
// every good one promoted, with nothing lost: the rolled back canary's
// failed messages are handled again on version 1, its dead letters
// requeued.
//
// A good canary can only be judged fairly if the harness does not make it
// fail: while a canary runs, the module faults (kill -9, SIGSTOP) and the
// poison messages are held back, and one starts only when no poison is
// still being retried and no module is stopped. A kill -9 of the core
// still comes at any time: the restarted core resumes the bake.

// canaryBake is a chaos canary's bake: long enough for the flaky build to
// fail the gate on the load's traffic, short beside the run.
const canaryBake = 3 * time.Second

// canaryGates are looser than the defaults where chaos adds noise that is
// not the version's doing (latency on a loaded 2-core machine), and as
// strict as the defaults on failures.
var canaryGates = control.UpgradeRequest{FailureRateIncrease: 0.05, P99Ratio: 20, MinMessages: 10}

// canaryState holds back the module faults and the poison while a canary
// runs, and counts the poison messages not yet acknowledged.
type canaryState struct {
	mu       sync.Mutex
	on       bool
	inFlight int // poison sends not yet settled
}

// holding says whether faults are held back for a canary.
func (c *canaryState) holding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on
}

// poisonStart notes a poison send, unless faults are held back.
func (c *canaryState) poisonStart() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		return false
	}
	c.inFlight++
	return true
}

func (c *canaryState) poisonDone() {
	c.mu.Lock()
	c.inFlight--
	c.mu.Unlock()
}

// startCanary begins a canary upgrade to the bad or the good version 2 if
// the run is quiet enough to judge it, and says whether it did.
func (r *Runner) startCanary(ctx context.Context, bad bool, async *sync.WaitGroup) bool {
	r.canary.mu.Lock()
	r.canary.on = true
	inFlight := r.canary.inFlight
	r.canary.mu.Unlock()
	if !r.quietForCanary(ctx, inFlight) {
		r.endCanary()
		return false
	}
	version := r.versions["2"]
	if bad {
		version = r.versions["2bad"]
	}
	r.stats.canaries.Add(1)
	async.Add(1)
	go func() {
		defer async.Done()
		defer r.endCanary()
		uctx, cancel := context.WithTimeout(ctx, upgradeTimeout)
		defer cancel()
		req := canaryGates
		req.Binary, req.Canary, req.BakeSeconds = version, "50%", canaryBake.Seconds()
		_, err := r.client.UpgradeWith(uctx, "ckv", req)
		if err != nil {
			r.note("canary upgrade (bad: %v): %v", bad, err)
			r.waitUpgradeOver(ctx)
		}
	}()
	return true
}

func (r *Runner) endCanary() {
	r.canary.mu.Lock()
	r.canary.on = false
	r.canary.mu.Unlock()
}

// quietForCanary says whether no module is stopped and no poison message
// is in flight or still being retried (acknowledged poison not yet in the
// dead letters).
func (r *Runner) quietForCanary(ctx context.Context, poisonInFlight int) bool {
	r.mu.Lock()
	stopped := len(r.stopped)
	r.mu.Unlock()
	if stopped > 0 || poisonInFlight > 0 {
		return false
	}
	st, err := r.statusWithin(ctx, 5*time.Second)
	if err != nil {
		return false
	}
	var dead uint64
	for _, a := range st.Actors {
		if a.Behaviour == "ckv" {
			dead += a.DeadLetters
		}
	}
	return dead >= uint64(r.hist.poisonAcked())
}

// waitUpgradeOver waits, for a canary request cut short by a core kill,
// until the restarted core has finished the op (bounded: a later event
// must not be held back for ever).
func (r *Runner) waitUpgradeOver(ctx context.Context) {
	deadline := time.Now().Add(upgradeTimeout)
	for time.Now().Before(deadline) {
		if ups, err := r.upgradesWithin(ctx, 2*time.Second); err == nil && !hasOp(ups, "ckv") {
			return
		}
		if waitTick(ctx, 200*time.Millisecond) != nil {
			return
		}
	}
	r.note("the canary's op was still running %s after its request was cut short", upgradeTimeout)
}

func (r *Runner) upgradesWithin(ctx context.Context, d time.Duration) ([]control.UpgradeProgress, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return r.client.Upgrades(ctx)
}

func hasOp(ups []control.UpgradeProgress, behaviour string) bool {
	for _, u := range ups {
		if u.Behaviour == behaviour {
			return true
		}
	}
	return false
}

// CanaryCounts are the canaries' outcomes: how many of each kind ended as
// they must, and the violations.
type CanaryCounts struct {
	GoodPromoted, BadRolledBack int
	// BadPromoted counts bad versions promoted; GoodRolledBack good
	// versions rolled back.
	BadPromoted, GoodRolledBack int
}

func (c CanaryCounts) violations() int { return c.BadPromoted + c.GoodRolledBack }

// badCode is the code version of the flaky build.
const badCode = "2.0.1"

// checkCanaries reads the canary upgrades' history records: a bad version
// never completes, a good one never rolls back.
func checkCanaries(r *Report, records []mailbox.UpgradeRecord) {
	for _, rec := range records {
		if rec.Canary == "" || rec.Kind != "upgrade" {
			continue
		}
		bad := strings.HasPrefix(rec.To, badCode+" ")
		completed := strings.HasPrefix(rec.Outcome, "completed")
		switch {
		case bad && completed:
			r.Canaries.BadPromoted++
			r.problemf("canary upgrade %d to the flaky %s was promoted: %s", rec.ID, rec.To, rec.Canary)
		case bad && rec.Outcome == "rolled back":
			r.Canaries.BadRolledBack++
		case !bad && completed:
			r.Canaries.GoodPromoted++
		case !bad && rec.Outcome == "rolled back":
			r.Canaries.GoodRolledBack++
			r.problemf("canary upgrade %d to the healthy %s was rolled back: %s", rec.ID, rec.To, rec.Canary)
		}
	}
}

// summary is the canaries' part of the run's summary line.
func (c CanaryCounts) summary() string {
	s := fmt.Sprintf(", canaries: %d good promoted, %d bad rolled back", c.GoodPromoted, c.BadRolledBack)
	if c.violations() > 0 {
		s += fmt.Sprintf(" (%d bad promoted, %d good rolled back)", c.BadPromoted, c.GoodRolledBack)
	}
	return s
}
