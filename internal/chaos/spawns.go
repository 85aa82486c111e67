package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/graft-host/graft/core/control"
)

// Actors made at run time. A spawn event makes an actor "sp-N" of
// behaviour "ctm", one time in three from outside (the control API's
// spawn), otherwise from a configured actor's handler (ctx.Spawn, committed
// with its effect), each with the first message "init sp-N"; then it has
// the new actor set a few timers. A destroy event has a spawned actor set
// two timers due well after the destroy (300-1500 ms), then destroys it
// through the control API: those timers must never fire once the destroy
// was acknowledged, and nothing of the actor may be left.

// newSpawnName reserves the next spawned actor's name.
func (r *Runner) newSpawnName() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spawnN++
	return fmt.Sprintf("sp-%d", r.spawnN)
}

// spawnEvent spawns an actor and has it set one to three timers, in the
// background; then the actor may be destroyed by a later event.
func (r *Runner) spawnEvent(ctx context.Context, pick int, async *sync.WaitGroup) {
	name := r.newSpawnName()
	async.Add(1)
	go func() {
		defer async.Done()
		rng := rand.New(rand.NewPCG(uint64(pick), 1))
		if !r.spawn(ctx, name, pick) {
			return
		}
		r.armSpawned(ctx, rng, name, "a", 1+rng.IntN(3), true)
		r.mu.Lock()
		r.live = append(r.live, name)
		r.mu.Unlock()
	}()
}

// destroyEvent destroys one of the spawned actors, in the background,
// after it set two timers that are still pending when it goes. If none is
// ready it spawns one for the purpose, and half the time destroys it as
// soon as the spawn is acknowledged, racing the new actor's start.
func (r *Runner) destroyEvent(ctx context.Context, pick int, async *sync.WaitGroup) {
	r.mu.Lock()
	name := ""
	if len(r.live) > 0 {
		i := pick % len(r.live)
		name = r.live[i]
		r.live = slices.Delete(r.live, i, i+1)
	}
	r.mu.Unlock()
	fresh := name == ""
	if fresh {
		name = r.newSpawnName()
	}
	async.Add(1)
	go func() {
		defer async.Done()
		rng := rand.New(rand.NewPCG(uint64(pick), 2))
		if fresh && !r.spawn(ctx, name, pick) {
			return
		}
		if !fresh || pick%2 == 0 {
			r.armSpawned(ctx, rng, name, "d", 2, false)
		}
		r.destroy(ctx, name)
	}()
}

// spawn makes actor name, from outside or from a configured actor's
// handler as pick says, and records it; it says whether it was
// acknowledged.
func (r *Runner) spawn(ctx context.Context, name string, pick int) bool {
	op := SpawnOp{Name: name}
	var err error
	if pick%3 == 0 {
		err = r.attempt(ctx, func(ctx context.Context) error {
			_, err := r.client.Spawn(ctx, name, control.SpawnRequest{Behaviour: ctmBehaviour, InitText: "init " + name})
			return err
		})
	} else {
		op.By = r.tmActors[pick%3-1]
		_, err = r.callCtm(ctx, op.By, "spawn:"+name, "spawn "+name)
	}
	op.Acked = err == nil
	if err != nil {
		r.note("spawn %s (by %q) not acknowledged: %v", name, op.By, err)
	} else {
		r.stats.spawns.Add(1)
	}
	r.hist.AddSpawn(op)
	return op.Acked
}

// armSpawned has the spawned actor set count timers (kind names them) to
// the configured "ctm" actors (and, with self, sometimes to itself): due
// 50-500 ms later for the timers of a spawn, 300-1500 ms for those set
// just before a destroy.
func (r *Runner) armSpawned(ctx context.Context, rng *rand.Rand, name, kind string, count int, self bool) {
	for k := 0; k < count; k++ {
		to := r.tmActors[rng.IntN(len(r.tmActors))]
		if self && rng.IntN(4) == 0 {
			to = name
		}
		delay := time.Duration(50+rng.IntN(450)) * time.Millisecond
		if kind == "d" {
			delay = time.Duration(300+rng.IntN(1200)) * time.Millisecond
		}
		r.arm(ctx, TimerOp{Tag: fmt.Sprintf("%s.%s%d", name, kind, k), Owner: name, To: to, After: delay})
	}
}

// destroy destroys actor name through the control API, retrying until
// answered. A retry told "not found" means an earlier attempt destroyed
// the actor and its answer was lost; a first attempt told so means the
// actor was missing, which the check reports if its spawn was
// acknowledged.
func (r *Runner) destroy(ctx context.Context, name string) {
	op := DestroyOp{Name: name}
	tries := 0
	err := r.attempt(ctx, func(ctx context.Context) error {
		tries++
		err := r.client.Destroy(ctx, name)
		var api *control.APIError
		if errors.As(err, &api) && api.Code == control.CodeNotFound {
			if tries > 1 {
				return nil
			}
			op.Missing = true
		}
		return err
	})
	op.Acked, op.AckAt = err == nil, time.Now().UnixNano()
	if err != nil {
		r.note("destroy %s not acknowledged: %v", name, err)
	} else {
		r.stats.destroys.Add(1)
	}
	r.hist.AddDestroy(op)
}
