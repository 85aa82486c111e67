package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
)

// The cluster's failover and handoff figures in docs/BENCHMARKS.md come
// from:
//
//	go test -run '^$' -bench 'Cluster' -benchtime 3x ./cmd/graft/
//
// Both run real graft cores (lease_ttl 2s, which the failover figure is
// set against) on an embedded etcd member.

// BenchmarkClusterFailover: two members; the owner of k0 is killed with
// kill -9; failover-ms is the time from the kill to k0's first reply
// through the other member (target: under lease_ttl + 1 s), with the
// lease's TTL beside it as lease-ms.
func BenchmarkClusterFailover(b *testing.B) {
	var total time.Duration
	for i := range b.N {
		m := etcdtest.Start(b)
		_, kv := kvSource(b)
		prefix := fmt.Sprintf("/graft/failover-%d", i)
		a := startGraftAt(b, clusterConfig(b, m.Endpoint, prefix, kv, 0), nil)
		c := startGraftAt(b, clusterConfig(b, m.Endpoint, prefix, kv, 1), nil)
		cores := map[string]*coreProc{"m0": a, "m1": c}
		var owner string
		testbin.WaitFor(b, 60*time.Second, "k0 owned", func() bool { owner = c.status(b)["k0"].Owner; return owner != "" })
		survivor := cores[map[string]string{"m0": "m1", "m1": "m0"}[owner]]
		survivor.ok(b, "call", "k0", "warm")
		require.NoError(b, cores[owner].cmd.Process.Kill())
		<-cores[owner].exited
		killed := time.Now()
		cl := control.NewClient(survivor.socket)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := cl.Call(ctx, "k0", control.CallRequest{SendRequest: control.SendRequest{Text: "after"}})
			cancel()
			if err == nil {
				break
			}
			require.Less(b, time.Since(killed), time.Minute, "k0 never answered: %v", err)
		}
		total += time.Since(killed)
		cl.Close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
	b.ReportMetric(2000, "lease-ms")
}

// BenchmarkClusterHandoff: one member runs six actors, each called in a
// loop; a second member joins and takes its share over. handoff-pause-ms
// is the longest gap between two replies of an actor that moved;
// steady-gap-ms, the baseline, is the longest gap of the same probes
// before the join.
func BenchmarkClusterHandoff(b *testing.B) {
	var pause, steady time.Duration
	for i := range b.N {
		m := etcdtest.Start(b)
		_, kv := kvSource(b)
		prefix := fmt.Sprintf("/graft/handoff-%d", i)
		a := startGraftAt(b, clusterConfig(b, m.Endpoint, prefix, kv, 0), nil)
		testbin.WaitFor(b, 60*time.Second, "m0 owns every actor", func() bool { return len(ownedBy(b, a, "m0")) == 6 })
		probes := startProbes(a.socket, 6)
		time.Sleep(2 * time.Second)
		before := probes.maxGaps()
		c := startGraftAt(b, clusterConfig(b, m.Endpoint, prefix, kv, 1), nil)
		testbin.WaitFor(b, 60*time.Second, "m1 took a share", func() bool { return len(ownedBy(b, c, "m1")) > 0 })
		time.Sleep(2 * time.Second)
		moved := ownedBy(b, c, "m1")
		probes.stop()
		after := probes.maxGaps()
		var worst, base time.Duration
		for _, name := range moved {
			worst = max(worst, after[name])
		}
		for _, g := range before {
			base = max(base, g)
		}
		pause += worst
		steady += base
		b.Logf("moved %v: worst gap %s (before the join: %s)", moved, worst, base)
	}
	b.ReportMetric(float64(pause.Microseconds())/1000/float64(b.N), "handoff-pause-ms")
	b.ReportMetric(float64(steady.Microseconds())/1000/float64(b.N), "steady-gap-ms")
}

// probes call each actor k0..k(n-1) in a loop and keep the longest gap
// between two replies of each.
type probes struct {
	mu     sync.Mutex
	last   map[string]time.Time
	gaps   map[string]time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startProbes(socket string, n int) *probes {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probes{last: map[string]time.Time{}, gaps: map[string]time.Duration{}, cancel: cancel}
	for k := range n {
		name := fmt.Sprintf("k%d", k)
		p.wg.Go(func() {
			cl := control.NewClient(socket)
			defer cl.Close()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := cl.Call(cctx, name, control.CallRequest{SendRequest: control.SendRequest{Text: "probe"}})
				cancel()
				if err != nil {
					continue
				}
				now := time.Now()
				p.mu.Lock()
				if l, ok := p.last[name]; ok {
					p.gaps[name] = max(p.gaps[name], now.Sub(l))
				}
				p.last[name] = now
				p.mu.Unlock()
			}
		})
	}
	return p
}

// maxGaps returns the longest gaps so far, and starts counting afresh.
func (p *probes) maxGaps() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.gaps
	p.gaps = map[string]time.Duration{}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return out
}

func (p *probes) stop() { p.cancel(); p.wg.Wait() }
