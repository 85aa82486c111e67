package upgrade_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// The figures in docs/BENCHMARKS.md come from:
//
//	go test -run '^$' -bench 'Upgrade' -benchtime 3x ./upgrade/
//	go test -run '^$' -bench 'Upgrade10kActors' -benchtime 1x ./upgrade/
//	go test -run '^$' -bench 'DryRunUnderLoad' -benchtime 1x ./upgrade/

// BenchmarkUpgradeUnderLoad: 8 actors, each driven by a closed loop of
// synchronous calls (sync durability), while kv2 is written into the
// watched place. Reported: the longest gap between two consecutive answers
// of one actor from the binary's write to the upgrade's end (max-gap-ms:
// the copy into the cache and the new module's start, made during the
// debounce, count too), the p99 call latency over that time minus before
// it (p99-added-ms), the p99 of the actors' pauses as the upgrade's
// history records them (pause-p99-ms: drain, migrate and commit of one
// actor) and of their drains alone (drain-p99-ms: the wait for the batch
// in flight to commit, while the actor still serves) and of the rest
// (held-p99-ms: the upgrade's own part), the time from the
// binary being in place to the first answer from v2
// (written-to-serving-ms), and, as the machine's baseline in the same run,
// the longest gap over a window as long, before the write
// (steady-max-gap-ms).
func BenchmarkUpgradeUnderLoad(b *testing.B) {
	var gaps, added, pauses, drains, held, serving, steady []float64
	for i := 0; i < b.N; i++ {
		r := upgradeUnderLoad(b)
		gaps, added, pauses, serving = append(gaps, r.maxGap), append(added, r.p99Added), append(pauses, r.pauseP99), append(serving, r.writtenToServing)
		drains, steady, held = append(drains, r.drainP99), append(steady, r.steadyMaxGap), append(held, r.heldP99)
	}
	b.ReportMetric(slices.Max(gaps), "max-gap-ms")
	b.ReportMetric(slices.Max(added), "p99-added-ms")
	b.ReportMetric(slices.Max(pauses), "pause-p99-ms")
	b.ReportMetric(slices.Max(serving), "written-to-serving-ms")
	b.ReportMetric(slices.Max(drains), "drain-p99-ms")
	b.ReportMetric(slices.Max(held), "held-p99-ms")
	b.ReportMetric(slices.Max(steady), "steady-max-gap-ms")
}

// loadResult is one run of upgradeUnderLoad, in milliseconds.
type loadResult struct {
	maxGap, p99Added, pauseP99, writtenToServing float64
	// drainP99 is the part of the pauses spent waiting for each actor's
	// batch in flight to commit; steadyMaxGap the longest gap between two
	// answers of an actor over a window as long as the upgrade's, just
	// before the binary is written: the machine's own hiccups.
	drainP99, steadyMaxGap float64
	// heldP99 is the p99 of each pause less its drain: how long the
	// actor was held once its batch in flight had committed (migrate
	// tail, commit, resume), the upgrade's own part.
	heldP99 float64
}

// pauseDurations are the per-actor pauses in an upgrade's history.
func pauseDurations(steps []mailbox.UpgradeStep) []time.Duration {
	return pauseParts(steps, func(st mailbox.UpgradeStep) time.Duration { return st.Duration })
}

// drainDurations are the drains of those pauses.
func drainDurations(steps []mailbox.UpgradeStep) []time.Duration {
	return pauseParts(steps, func(st mailbox.UpgradeStep) time.Duration { return st.Drain })
}

// heldDurations are those pauses less their drains.
func heldDurations(steps []mailbox.UpgradeStep) []time.Duration {
	return pauseParts(steps, func(st mailbox.UpgradeStep) time.Duration { return st.Duration - st.Drain })
}

// pauseParts is part of each pause step in steps.
func pauseParts(steps []mailbox.UpgradeStep, part func(mailbox.UpgradeStep) time.Duration) []time.Duration {
	var out []time.Duration
	for _, st := range steps {
		if st.Step == "pause" {
			out = append(out, part(st))
		}
	}
	return out
}

// maxGapIn is the longest gap between two consecutive answers of one
// actor that overlaps [from, to].
func maxGapIn(samples [][]callSample, from, to time.Time) float64 {
	var gap float64
	for _, list := range samples {
		for j := 1; j < len(list); j++ {
			if list[j].at.After(from) && list[j-1].at.Before(to) {
				gap = max(gap, ms(list[j].at.Sub(list[j-1].at)))
			}
		}
	}
	return gap
}

type callSample struct {
	at      time.Time // when the answer came
	latency time.Duration
	v2      bool
}

func upgradeUnderLoad(b *testing.B) loadResult {
	var maxGap float64
	dir := b.TempDir()
	install(b, "kv1", dir+"/kv")
	s := boot(b, dir, 8, upgrade.Options{Debounce: 20 * time.Millisecond, GroupSize: 8})
	defer s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(b, s.mgr.Watch(ctx))

	stop := make(chan struct{})
	samples := make([][]callSample, len(s.actors))
	var wg sync.WaitGroup
	for i, a := range s.actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				reply, err := s.core.Call(ctx, a, []byte(fmt.Sprint(n)), core.SendOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				samples[i] = append(samples[i], callSample{at: time.Now(), latency: time.Since(t0), v2: strings.HasPrefix(string(reply), "v2:")})
			}
		}()
	}
	time.Sleep(time.Second) // a steady load before the upgrade, by design
	written := time.Now()
	install(b, "kv2", s.source)
	deadline := time.Now().Add(30 * time.Second)
	for len(s.history(b)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	hist := s.history(b)
	require.NotEmpty(b, hist, "no upgrade happened")
	require.Equal(b, "completed", hist[0].Outcome)
	time.Sleep(500 * time.Millisecond) // and after it
	close(stop)
	wg.Wait()

	b.Logf("steps: %v; began %.1fms after written, ended %.1fms", hist[0].Steps, ms(hist[0].Started.Sub(written)), ms(hist[0].Ended.Sub(written)))
	upEnd := hist[0].Ended
	var before, during []time.Duration
	firstV2 := time.Time{}
	for _, list := range samples {
		for j, c := range list {
			start := c.at.Add(-c.latency)
			switch {
			case c.at.Before(written):
				before = append(before, c.latency)
			case start.Before(upEnd):
				during = append(during, c.latency)
			}
			if c.v2 && (firstV2.IsZero() || c.at.Before(firstV2)) {
				firstV2 = c.at
			}
			if j > 0 && c.at.After(written) && list[j-1].at.Before(upEnd) {
				if g := ms(c.at.Sub(list[j-1].at)); g > maxGap {
					maxGap = g
					b.Logf("gap %.1fms from +%.1fms to +%.1fms after the binary was written (v2=%v)", g, ms(list[j-1].at.Sub(written)), ms(c.at.Sub(written)), c.v2)
				}
			}
		}
	}
	require.False(b, firstV2.IsZero(), "v2 never answered")
	window := upEnd.Sub(written)
	return loadResult{maxGap: maxGap, p99Added: ms(p99(during) - p99(before)),
		pauseP99: ms(p99(pauseDurations(hist[0].Steps))), writtenToServing: ms(firstV2.Sub(written)),
		drainP99: ms(p99(drainDurations(hist[0].Steps))), heldP99: ms(p99(heldDurations(hist[0].Steps))), steadyMaxGap: maxGapIn(samples, written.Add(-window-100*time.Millisecond), written.Add(-100*time.Millisecond))}
}

// BenchmarkUpgrade1000Actors: 1,000 actors with committed state, upgraded
// through the API; reports the upgrade's total time and the longest pause
// of one actor.
func BenchmarkUpgrade1000Actors(b *testing.B) {
	total, pause := upgradeMany(b, 1000, 0)
	b.ReportMetric(total, "total-ms")
	b.ReportMetric(pause, "max-pause-ms")
}

// BenchmarkUpgrade10kActors: 10,000 actors with committed state, upgraded
// through the API while 16 callers keep calling them; reports the
// upgrade's total time and the longest pause of one actor (targets: 2 s
// and 10 ms).
func BenchmarkUpgrade10kActors(b *testing.B) {
	total, pause := upgradeMany(b, 10_000, 16)
	b.ReportMetric(total, "total-ms")
	b.ReportMetric(pause, "max-pause-ms")
}

// upgradeMany runs b.N upgrades of n actors, each with a committed state,
// while `callers` goroutines call random actors of them in a closed loop,
// and returns the worst total time and the worst pause, in milliseconds.
func upgradeMany(b *testing.B, n, callers int) (totalMs, maxPauseMs float64) {
	var totals, pauses []float64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		install(b, "kv1", dir+"/kv")
		s := boot(b, dir, n, upgrade.Options{GroupSize: 64})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		callAll(b, ctx, s)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), 1))
				for {
					select {
					case <-stop:
						return
					default:
					}
					a := s.actors[rng.IntN(len(s.actors))]
					if _, err := s.core.Call(ctx, a, []byte("x"), core.SendOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		t0 := time.Now()
		rec, err := s.mgr.Upgrade(ctx, "kv", bin("kv2"))
		total := time.Since(t0)
		close(stop)
		wg.Wait()
		require.NoError(b, err)
		totals, pauses = append(totals, ms(total)), append(pauses, ms(slices.Max(pauseDurations(rec.Steps))))
		s.stop()
		cancel()
	}
	return slices.Max(totals), slices.Max(pauses)
}

// callAll calls every actor once, 64 at a time, so that each has a
// committed state to migrate.
func callAll(b *testing.B, ctx context.Context, s *system) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, a := range s.actors {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := s.core.Call(ctx, a, []byte("x"), core.SendOptions{}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(0.99*float64(len(d)-1))]
}

// BenchmarkDryRunUnderLoad: 1,000 actors keeping their last 16 messages
// (verify_window), 8 callers calling random ones in closed loops, and a
// dry run of kv2 that migrates every state and replays the kept traffic.
// Reported: the dry run's time (dry-run-ms), the messages it replayed,
// and the callers' p99 during it minus their p99 over as long a window
// just before it (p99-added-ms: what a dry run costs the live system).
func BenchmarkDryRunUnderLoad(b *testing.B) {
	var took, added, replayed []float64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		install(b, "kv1", dir+"/kv")
		s := bootWith(b, dir, 1000, upgrade.Options{}, func(c *core.Config) {
			kv := c.Behaviours["kv"]
			kv.VerifyWindow = 16
			c.Behaviours["kv"] = kv
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		for range 4 {
			callAll(b, ctx, s) // 4 kept messages per actor
		}
		var mu sync.Mutex
		var samples []callSample
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 2))
				for {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					if _, err := s.core.Call(ctx, s.actors[rng.IntN(len(s.actors))], []byte("x"), core.SendOptions{}); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					samples = append(samples, callSample{at: time.Now(), latency: time.Since(t0)})
					mu.Unlock()
				}
			})
		}
		time.Sleep(3 * time.Second) // a steady load before the dry run, by design
		t0 := time.Now()
		rep, err := s.mgr.DryRun(ctx, "kv", bin("kv2"))
		d := time.Since(t0)
		close(stop)
		wg.Wait()
		require.NoError(b, err)
		require.NotNil(b, rep.Replay)
		var before, during []time.Duration
		for _, c := range samples {
			switch start := c.at.Add(-c.latency); {
			case start.After(t0.Add(-d)) && c.at.Before(t0):
				before = append(before, c.latency)
			case !start.Before(t0) && !c.at.After(t0.Add(d)):
				during = append(during, c.latency)
			}
		}
		b.Logf("dry run %s: %d calls in the window before, %d during; %s", d, len(before), len(during), rep.Summary()[:min(200, len(rep.Summary()))])
		took, added, replayed = append(took, ms(d)), append(added, ms(p99(during)-p99(before))), append(replayed, float64(rep.Replay.Messages))
		s.stop()
		cancel()
	}
	b.ReportMetric(slices.Max(took), "dry-run-ms")
	b.ReportMetric(slices.Max(added), "p99-added-ms")
	b.ReportMetric(slices.Min(replayed), "replayed")
}
