package core_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/graft-host/graft/core"
)

// scriptedPlacement answers Owns from a script: owned, or owned for the
// next `once` calls only. It stands in for package cluster, whose
// ownership flips under a running core when a member steps down and
// joins again (the cmd/graft cluster tests run that for real); the
// script makes the one interleaving below happen every time.
type scriptedPlacement struct {
	owned atomic.Bool
	once  atomic.Int32
}

func (p *scriptedPlacement) Owns(string) bool {
	if p.once.Add(-1) >= 0 {
		return true
	}
	return p.owned.Load()
}

func (p *scriptedPlacement) OwnerOf(string) string {
	if p.owned.Load() {
		return "me"
	}
	return "other"
}

// A wake queued while the core owned the actor, carried out once it no
// longer did (the member stepped down in between), must leave the actor
// wakeable: when the actor comes back, Rebalance runs it. (Found by
// `chaos.sh --cluster`: an owned actor stayed passive for good, its
// calls unanswered.)
func TestWakeThatFindsTheActorGoneLeavesItWakeable(t *testing.T) {
	p := &scriptedPlacement{}
	cfg := recorderConfig(t, t.TempDir(), "a")
	cfg.Placement = p
	c := startCore(t, cfg)
	status := func() string {
		rows, err := c.Status(ctxFor(t, 10*time.Second))
		if err != nil || len(rows) != 1 {
			return ""
		}
		return rows[0].Status
	}
	waitFor(t, 10*time.Second, "a passive, owned elsewhere", func() bool { return status() == core.StatusRemote })

	p.once.Store(1) // wakeLater sees it owned; the wake itself no longer does
	core.WakeLater(c, "a")
	waitFor(t, 10*time.Second, "the wake over", func() bool { return !core.WakeQueued(c, "a") })

	p.once.Store(0)
	p.owned.Store(true)
	if _, err := c.Rebalance(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a running again here", func() bool { return status() == "running" })
}
