package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graft-host/graft/core/control"
)

// fault is one kind of injected event.
type fault int

const (
	faultCoreKill fault = iota
	faultModuleKill
	faultModuleStop
	faultUpgrade
	faultPoison
	faultOversize
	faultSpawn
	faultDestroy
	faultTimerKill
)

// weights of the faults, in the order above: module faults are the most
// common, poison messages (a crash every time, or a state over the size
// limit every time) the rarest; spawns come before the destroys that need
// them, and a kill -9 right after timers were set (faultTimerKill) adds to
// the plain core kills. Timers themselves are part of the load.
var faultWeights = [...]int{12, 25, 20, 30, 8, 4, 10, 6, 5}

func pickFault(rng *rand.Rand) fault {
	total := 0
	for _, w := range faultWeights {
		total += w
	}
	n := rng.IntN(total)
	for i, w := range faultWeights {
		if n < w {
			return fault(i)
		}
		n -= w
	}
	return faultUpgrade
}

// upgradeTimeout bounds one upgrade or rollback request; one that is cut
// short by a core kill is simply over (the core finishes or undoes it on
// restart, which the version check verifies).
const upgradeTimeout = 60 * time.Second

// inject runs the fault schedule: Events faults at random gaps, every
// choice drawn from the seed. Slow faults (upgrades, poison sends, the end
// of a SIGSTOP) run in the background on async so the next fault can hit
// them mid-way.
func (r *Runner) inject(ctx context.Context, async *sync.WaitGroup) error {
	rng := rand.New(rand.NewPCG(uint64(r.opts.Seed), 0x6372616674))
	for i := 0; i < r.opts.Events; i++ {
		gap := time.Duration(rng.Int64N(int64(2 * r.opts.MeanGap)))
		if err := waitTick(ctx, gap); err != nil {
			return err
		}
		f := pickFault(rng)
		pick := rng.IntN(1 << 30) // which actor, binary or duration: drawn now so the schedule depends on the seed only
		if err := r.fire(ctx, f, pick, async); err != nil {
			return fmt.Errorf("event %d: %w", i+1, err)
		}
		r.stats.events.Add(1)
	}
	return nil
}

func (r *Runner) fire(ctx context.Context, f fault, pick int, async *sync.WaitGroup) error {
	switch f {
	case faultCoreKill:
		if err := r.killCore(ctx); err != nil {
			return err
		}
		return r.startCore(ctx)
	case faultModuleKill, faultModuleStop:
		return r.signalModule(ctx, f, pick, async)
	case faultUpgrade:
		r.upgrade(ctx, pick, async)
	case faultPoison:
		r.sendPoison(ctx, pick, "poison", async)
	case faultOversize:
		r.sendPoison(ctx, pick, "oversize", async)
	case faultSpawn:
		r.spawnEvent(ctx, pick, async)
	case faultDestroy:
		r.destroyEvent(ctx, pick, async)
	case faultTimerKill:
		return r.timerKill(ctx, pick, async)
	}
	return nil
}

// modulePick chooses the pick-th module process (of the actors sorted by
// name, each process counted once: the "ctm" actors share one), checking
// it is a child of the current core running a binary of this run.
func (r *Runner) modulePick(ctx context.Context, pick int) (procInfo, bool) {
	core := r.currentCore()
	if core == nil {
		return procInfo{}, false
	}
	st, err := r.statusWithin(ctx, 5*time.Second)
	if err != nil {
		r.note("status for a module fault: %v", err)
		return procInfo{}, false
	}
	sort.Slice(st.Actors, func(i, j int) bool { return st.Actors[i].Name < st.Actors[j].Name })
	var rows []control.ActorStatus
	seen := map[int]bool{}
	for _, a := range st.Actors {
		if a.PID > 0 && !seen[a.PID] {
			seen[a.PID] = true
			rows = append(rows, a)
		}
	}
	if len(rows) == 0 {
		return procInfo{}, false
	}
	row := rows[pick%len(rows)]
	p, err := readProc(row.PID)
	if err != nil || p.ppid != core.info.pid || !p.alive() || !strings.HasPrefix(p.exe, r.dir+"/") {
		return procInfo{}, false // exited meanwhile, or not ours
	}
	return p, true
}

// signalModule kill -9s or SIGSTOPs a module process. A stopped module is
// continued after a random pause of up to 1.5 times the call timeout, so
// some pauses end by themselves and others make the core declare a hang.
func (r *Runner) signalModule(ctx context.Context, f fault, pick int, async *sync.WaitGroup) error {
	if r.canary.holding() {
		return nil // a canary is being judged: see canary.go
	}
	p, ok := r.modulePick(ctx, pick)
	if !ok {
		return nil
	}
	if f == faultModuleKill {
		if err := p.signal(syscall.SIGKILL); err == nil {
			r.stats.moduleKills.Add(1)
		}
		return nil
	}
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return nil //nolint:nilerr // the module is already gone: nothing to stop, not a harness failure
	}
	r.stats.moduleStops.Add(1)
	r.mu.Lock()
	r.stopped[p.pid] = p
	r.mu.Unlock()
	pause := 50*time.Millisecond + time.Duration(pick%4500)*time.Millisecond
	async.Add(1)
	go func() {
		defer async.Done()
		_ = waitTick(ctx, pause)
		r.resume(p)
	}()
	return nil
}

// resume continues a process the harness stopped, if it is still the same.
func (r *Runner) resume(p procInfo) {
	r.mu.Lock()
	_, ok := r.stopped[p.pid]
	delete(r.stopped, p.pid)
	r.mu.Unlock()
	if ok {
		_ = p.signal(syscall.SIGCONT)
	}
}

// resumeStopped continues every module still stopped (end of the run).
func (r *Runner) resumeStopped() {
	r.mu.Lock()
	ps := make([]procInfo, 0, len(r.stopped))
	for _, p := range r.stopped {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		r.resume(p)
	}
}

// upgrade alternates the "ckv" actors between versions 1 and 2: if any
// actor is on version 1, it upgrades to version 2 (by `graft upgrade
// --binary`, or one time in four by writing the other version's bytes over
// the watched configured binary, or one time in four each as a canary of
// the good or the flaky build, canary.go); otherwise it rolls back.
func (r *Runner) upgrade(ctx context.Context, pick int, async *sync.WaitGroup) {
	st, err := r.statusWithin(ctx, 5*time.Second)
	if err != nil {
		r.note("status for an upgrade: %v", err)
		return
	}
	onV1 := false
	for _, a := range st.Actors {
		if a.Behaviour == "ckv" && a.Module == "1.0.0" {
			onV1 = true
		}
	}
	if onV1 && pick%4 == 0 {
		r.writeSource()
		return
	}
	if onV1 && pick%4 >= 2 && r.startCanary(ctx, pick%4 == 3, async) {
		return
	}
	async.Add(1)
	go func() {
		defer async.Done()
		uctx, cancel := context.WithTimeout(ctx, upgradeTimeout)
		defer cancel()
		var err error
		if onV1 {
			r.stats.upgrades.Add(1)
			_, err = r.client.Upgrade(uctx, "ckv", r.versions["2"])
		} else {
			r.stats.rollbacks.Add(1)
			_, err = r.client.Rollback(uctx, "ckv")
		}
		if err != nil {
			r.stats.upgradeFailures.Add(1)
			r.note("upgrade (from v1: %v): %v", onV1, err)
		}
	}()
}

// writeSource replaces the watched binary with the other version's bytes;
// the core's watcher upgrades (v1 -> v2) or refuses (v2 -> v1 cannot read
// schema 2), and either way the checks must hold.
func (r *Runner) writeSource() {
	cur, err := os.ReadFile(r.kvSource)
	if err != nil {
		r.note("read the watched binary: %v", err)
		return
	}
	v1, err := os.ReadFile(r.versions["1"])
	if err != nil {
		r.note("read v1: %v", err)
		return
	}
	next := r.versions["1"]
	if bytes.Equal(cur, v1) {
		next = r.versions["2"]
	}
	if err := copyFile(next, r.kvSource); err != nil {
		r.note("write the watched binary: %v", err)
		return
	}
	r.stats.sourceWrites.Add(1)
}

// sendPoison sends a message that fails every time, with an id, retried
// like any send; it must end in the dead letters. kind "poison" crashes
// its module, kind "oversize" makes a state over the core's size limit.
func (r *Runner) sendPoison(ctx context.Context, pick int, kind string, async *sync.WaitGroup) {
	if !r.canary.poisonStart() {
		return // a canary is being judged: see canary.go
	}
	actor := r.kvActors[pick%len(r.kvActors)]
	n := r.stats.poison.Add(1)
	payload := fmt.Sprintf("%s:%d", kind, n)
	async.Add(1)
	go func() {
		defer async.Done()
		err := r.attempt(ctx, func(ctx context.Context) error {
			_, err := r.client.Send(ctx, actor, control.SendRequest{Text: payload, ID: payload, Sender: "poisoner"})
			return err
		})
		r.hist.AddPoison(PoisonOp{Actor: actor, Payload: payload, Acked: err == nil})
		r.canary.poisonDone()
	}()
}
