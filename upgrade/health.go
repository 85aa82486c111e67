package upgrade

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/core"
)

// latencySamples bounds the batch latencies kept per group during a bake:
// the last ones, enough for a p99.
const latencySamples = 4096

// groupCounts are what a bake counts of one group of actors.
type groupCounts struct {
	handled int64 // messages handled and committed
	failed  int64 // failed attempts
	dead    int64 // messages dead-lettered
	lat     []time.Duration
	next    int // ring position in lat
}

func (g *groupCounts) failureRate() float64 {
	if n := g.handled + g.failed; n > 0 {
		return float64(g.failed) / float64(n)
	}
	return 0
}

func (g *groupCounts) deadRate() float64 {
	if n := g.handled + g.dead; n > 0 {
		return float64(g.dead) / float64(n)
	}
	return 0
}

func (g *groupCounts) p99() time.Duration {
	if len(g.lat) == 0 {
		return 0
	}
	s := slices.Clone(g.lat)
	slices.Sort(s)
	return s[int(0.99*float64(len(s)-1))]
}

func (g *groupCounts) describe() string {
	return fmt.Sprintf("%d handled, %d failed attempts (%s), %d dead-lettered, p99 %s",
		g.handled, g.failed, pct(g.failureRate()), g.dead, g.p99())
}

func (g *groupCounts) observe(took time.Duration) {
	if len(g.lat) < latencySamples {
		g.lat = append(g.lat, took)
		return
	}
	g.lat[g.next] = took
	g.next = (g.next + 1) % latencySamples
}

// nopObserver is health's next observer when the core has none.
type nopObserver struct{}

func (nopObserver) BatchCommitted(string, string, string, int, time.Duration) {}
func (nopObserver) MessageFailed(string, string)                              {}
func (nopObserver) DeadLettered(string, string)                               {}
func (nopObserver) ModuleStarted(string, bool)                                {}
func (nopObserver) Passivated(string)                                         {}
func (nopObserver) Woken(string)                                              {}

// bakeWatch counts one behaviour's canary and old groups during a bake.
type bakeWatch struct {
	canary map[string]bool
	groups [2]groupCounts // [0] old version, [1] canary
}

// health is the Manager's core.Observer: during a bake it counts, per
// group, what the core reports of the baking behaviour's actors, and
// passes every event on to the observer the core was configured with.
// Calls come on the core's hot paths: one mutex and a map lookup.
type health struct {
	next core.Observer
	// baking counts the watches: without one, an event costs an atomic
	// load, not the mutex every actor's commit would share.
	baking atomic.Int32

	mu      sync.Mutex
	watches map[string]*bakeWatch // by behaviour
}

var _ core.Observer = (*health)(nil)

// watch starts counting behaviour's groups, canary being the canary group.
func (h *health) watch(behaviour string, canary []string) {
	w := &bakeWatch{canary: map[string]bool{}}
	for _, a := range canary {
		w.canary[a] = true
	}
	h.mu.Lock()
	h.watches[behaviour] = w
	h.baking.Store(int32(len(h.watches)))
	h.mu.Unlock()
}

// counts returns copies of behaviour's canary and old-group counts.
func (h *health) counts(behaviour string) (canary, old groupCounts) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watches[behaviour]
	if w == nil {
		return groupCounts{}, groupCounts{}
	}
	canary, old = w.groups[1], w.groups[0]
	canary.lat, old.lat = slices.Clone(canary.lat), slices.Clone(old.lat)
	return canary, old
}

// unwatch stops counting behaviour.
func (h *health) unwatch(behaviour string) {
	h.mu.Lock()
	delete(h.watches, behaviour)
	h.baking.Store(int32(len(h.watches)))
	h.mu.Unlock()
}

// group returns the counts actor's event goes to, or nil; the caller
// holds h.mu.
func (h *health) group(actor, behaviour string) *groupCounts {
	w := h.watches[behaviour]
	if w == nil {
		return nil
	}
	if w.canary[actor] {
		return &w.groups[1]
	}
	return &w.groups[0]
}

// BatchCommitted implements core.Observer.
func (h *health) BatchCommitted(actor, behaviour, version string, n int, took time.Duration) {
	if h.baking.Load() == 0 {
		h.next.BatchCommitted(actor, behaviour, version, n, took)
		return
	}
	h.mu.Lock()
	if g := h.group(actor, behaviour); g != nil {
		g.handled += int64(n)
		g.observe(took)
	}
	h.mu.Unlock()
	h.next.BatchCommitted(actor, behaviour, version, n, took)
}

// MessageFailed implements core.Observer.
func (h *health) MessageFailed(actor, behaviour string) {
	if h.baking.Load() == 0 {
		h.next.MessageFailed(actor, behaviour)
		return
	}
	h.mu.Lock()
	if g := h.group(actor, behaviour); g != nil {
		g.failed++
	}
	h.mu.Unlock()
	h.next.MessageFailed(actor, behaviour)
}

// DeadLettered implements core.Observer.
func (h *health) DeadLettered(actor, behaviour string) {
	if h.baking.Load() == 0 {
		h.next.DeadLettered(actor, behaviour)
		return
	}
	h.mu.Lock()
	if g := h.group(actor, behaviour); g != nil {
		g.dead++
	}
	h.mu.Unlock()
	h.next.DeadLettered(actor, behaviour)
}

// ModuleStarted implements core.Observer.
func (h *health) ModuleStarted(behaviour string, restart bool) {
	h.next.ModuleStarted(behaviour, restart)
}

// Passivated implements core.Observer.
func (h *health) Passivated(behaviour string) { h.next.Passivated(behaviour) }

// Woken implements core.Observer.
func (h *health) Woken(behaviour string) { h.next.Woken(behaviour) }

// GroupHealth is one side of a baking canary's comparison: what its
// actors did since the bake began.
type GroupHealth struct {
	Handled, Failed, DeadLettered int64
	FailureRate                   float64
	P99                           time.Duration
}

func (g *groupCounts) public() GroupHealth {
	return GroupHealth{Handled: g.handled, Failed: g.failed, DeadLettered: g.dead, FailureRate: g.failureRate(), P99: g.p99()}
}

// CanaryHealth is behaviour's baking canary against its old group, as the
// gates see them now; ok is false when no canary of it bakes.
func (m *Manager) CanaryHealth(behaviour string) (canary, old GroupHealth, ok bool) {
	m.health.mu.Lock()
	_, ok = m.health.watches[behaviour]
	m.health.mu.Unlock()
	if !ok {
		return GroupHealth{}, GroupHealth{}, false
	}
	c, o := m.health.counts(behaviour)
	return c.public(), o.public(), true
}
