package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// injectCluster fires the run's events at random gaps from the seed. At
// most one core is down or stopped at a time, and one etcd member, so
// that a quorum of etcd and a live core always remain.
func (c *clusterRun) injectCluster(ctx context.Context, async *sync.WaitGroup) error {
	rng := rand.New(rand.NewPCG(uint64(c.opts.Seed), 7))
	var coreBusy sync.Mutex // one core fault at a time
	upgraded, rolledBack := false, false
	for e := 0; e < c.opts.Events; e++ {
		gap := time.Duration(rng.ExpFloat64() * float64(c.opts.MeanGap))
		if err := waitTick(ctx, min(gap, 4*c.opts.MeanGap)); err != nil {
			return err
		}
		c.stats.events.Add(1)
		i := rng.IntN(len(c.cores))
		switch k := rng.IntN(10); {
		case k < 4 && coreBusy.TryLock():
			c.stats.coreKills.Add(1)
			c.cores[i].signal(syscall.SIGKILL)
			back := time.Duration(500+rng.IntN(2000)) * time.Millisecond
			async.Go(func() {
				defer coreBusy.Unlock()
				_ = waitTick(ctx, back)
				if err := c.cores[i].start(c.graftBin); err != nil {
					c.note("restart %s: %v", c.cores[i].name, err)
				}
			})
		case k < 6 && coreBusy.TryLock():
			c.stats.moduleStops.Add(1)
			c.cores[i].signal(syscall.SIGSTOP)
			past := clusterLease + time.Duration(200+rng.IntN(1500))*time.Millisecond
			async.Go(func() {
				defer coreBusy.Unlock()
				_ = waitTick(ctx, past)
				c.cores[i].signal(syscall.SIGCONT)
			})
		case k < 8 && c.etcdDown.CompareAndSwap(false, true):
			j := rng.IntN(len(c.etcd))
			c.stats.moduleKills.Add(1)
			c.etcd[j].signal(syscall.SIGKILL)
			back := time.Duration(500+rng.IntN(2000)) * time.Millisecond
			async.Go(func() {
				defer c.etcdDown.Store(false)
				_ = waitTick(ctx, back)
				c.etcd[j].args = withState(c.etcd[j].args, "existing")
				if err := c.etcd[j].start(c.etcdBin); err != nil {
					c.note("restart etcd %s: %v", c.etcd[j].name, err)
				}
			})
		case !upgraded && e >= c.opts.Events/3:
			upgraded = true
			c.stats.upgrades.Add(1)
			if rng.IntN(2) == 0 {
				if err := copyFile(c.versions["2"], c.kvSource); err != nil { // every member watches it
					return err
				}
				break
			}
			async.Go(func() { c.upgradeThrough(ctx, i) }) // one member; package rollout carries it to the others
		case upgraded && !rolledBack && e >= 2*c.opts.Events/3:
			rolledBack = true
			c.stats.rollbacks.Add(1)
			async.Go(func() { c.rollbackThrough(ctx, i) })
		}
	}
	return nil
}

// withState sets the member command's -state flag.
func withState(args []string, state string) []string {
	for i := range args {
		if args[i] == "-state" && i+1 < len(args) {
			args[i+1] = state
			return args
		}
	}
	return append(args, "-state", state)
}

// reviveAll lets every stopped core run again and starts what is down.
func (c *clusterRun) reviveAll(ctx context.Context) {
	for _, m := range c.cores {
		m.signal(syscall.SIGCONT)
	}
	for _, m := range c.etcd {
		if !m.alive() {
			m.args = withState(m.args, "existing")
			if err := m.start(c.etcdBin); err != nil {
				c.note("restart etcd %s: %v", m.name, err)
			}
		}
	}
	for _, m := range c.cores {
		if !m.alive() {
			if err := m.start(c.graftBin); err != nil {
				c.note("restart %s: %v", m.name, err)
			}
		}
	}
	if err := c.waitOwned(ctx, 2*time.Minute); err != nil {
		c.note("%v", err)
	}
}

// finishCluster waits for the queues to drain, stops the cores, checks
// that no plugin outlived them, and reads the final state from etcd.
func (c *clusterRun) finishCluster(ctx context.Context) (Final, error) {
	if err := c.drainCluster(ctx); err != nil {
		c.note("%v", err)
	}
	for _, m := range c.cores {
		m.stopGracefully(30 * time.Second)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(c.pluginsLeft()) > 0 {
		_ = waitTick(ctx, 50*time.Millisecond)
	}
	for _, p := range c.pluginsLeft() {
		c.leak("plugin process %d (%s) outlived the cores", p.pid, p.exe)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(octx, etcdstore.Config{Endpoints: c.endpoints, Prefix: "/graft/chaos", MaxTxnOps: 4096}, mailbox.Options{})
	if err != nil {
		return Final{}, fmt.Errorf("open the etcd store after the run: %w", err)
	}
	defer s.Close()
	f, err := c.readFinal(ctx, s)
	if err != nil {
		return Final{}, err
	}
	f.Leaks = append(f.Leaks, c.leaks...)
	return f, nil
}

// pluginsLeft are the run's plugin processes still alive.
func (c *clusterRun) pluginsLeft() []procInfo {
	var out []procInfo
	for _, p := range processesUnder(c.dir) {
		if p.exe != c.graftBin && p.exe != c.etcdBin {
			out = append(out, p)
		}
	}
	return out
}

// drainCluster waits until no actor has a queued message, as a live
// member sees it.
func (c *clusterRun) drainCluster(ctx context.Context) error {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.pickMember().Status(sctx)
		cancel()
		if err == nil {
			queued := 0
			for _, a := range st.Actors {
				queued += int(a.Depth)
			}
			if queued == 0 {
				return nil
			}
		}
		if err := waitTick(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the queues did not drain within %s", drainTimeout)
}

// stopAll kills whatever of the run still runs.
func (c *clusterRun) stopAll() {
	for _, m := range c.cores {
		m.signal(syscall.SIGCONT)
		m.signal(syscall.SIGKILL)
	}
	for _, m := range c.etcd {
		m.signal(syscall.SIGKILL)
	}
	for _, cl := range c.clients {
		cl.Close()
	}
	for _, p := range processesUnder(c.dir) {
		_ = p.signal(9)
	}
}

// rollbackThrough runs `graft rollback ckv` on member i, or on the next
// one that answers and has upgraded, trying again for a while: the
// upgrade may still be on its way to the members. The others follow it
// while actors move between members under the faults, so some reach a
// member that rolled back with the newer state, which it moves down.
func (c *clusterRun) rollbackThrough(ctx context.Context, i int) {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		j := (i + attempt) % len(c.cores)
		uctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := c.clients[j].Rollback(uctx, "ckv")
		cancel()
		if err == nil {
			return
		}
		c.note("rollback through %s: %v", c.cores[j].name, err)
		if waitTick(ctx, time.Second) != nil {
			return
		}
	}
}

// upgradeThrough runs `graft upgrade ckv --binary v2` on member i, or on
// the next one that answers: the other members follow it (package
// rollout), and the end check finds every actor on a version that reads
// its state whichever member was killed meanwhile.
func (c *clusterRun) upgradeThrough(ctx context.Context, i int) {
	for k := range len(c.cores) {
		j := (i + k) % len(c.cores)
		uctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := c.clients[j].Upgrade(uctx, "ckv", c.versions["2"])
		cancel()
		if err == nil {
			return
		}
		c.note("upgrade through %s: %v", c.cores[j].name, err)
	}
}
