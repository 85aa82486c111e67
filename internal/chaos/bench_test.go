package chaos

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// The figures in docs/BENCHMARKS.md come from scripts/bench.sh, which runs
//
//	go test -p 1 -run '^$' -bench 'PingPong|Recovery1M' -benchtime 1x ./internal/chaos/   (Recovery1M)
//	go test -p 1 -run '^$' -bench 'PingPong' -benchtime 2000x ./internal/chaos/

// envFill makes the test binary a child that fills a store and waits to be
// killed (BenchmarkRecovery1M).
const envFill = "GRAFT_CHAOS_FILL"

// benchPlugins holds the behaviours the benchmarks run, built by TestMain
// only when benchmarks are asked for (the unit tests need none).
var benchPlugins string

func TestMain(m *testing.M) {
	if dir := os.Getenv(envFill); dir != "" {
		fillChild(dir)
		return
	}
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // the unit tests need no plugins
	}
	testbin.Main(m, "graft-chaos-bench-", &benchPlugins, testbin.Pkgs("./testdata/pingpong", "./testdata/ckv1")...)
}

const (
	recoveryMessages = 1_000_000
	recoveryActors   = 16
	fillProducers    = 16
)

func recoveryActor(i int) string { return fmt.Sprintf("r%d", i) }

// fillChild enqueues recoveryMessages 128-byte messages (relaxed) over
// recoveryActors actors, says "filled" on stdout and waits for its kill -9
// while holding the store open.
func fillChild(dir string) {
	ctx := context.Background()
	s, err := pebblestore.Open(dir, mailbox.Options{Durability: mailbox.DurabilityRelaxed})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < recoveryActors; i++ {
		if _, err := s.Register(ctx, recoveryActor(i), "ckv"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	payload := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < fillProducers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1) - 1; n < recoveryMessages; n = next.Add(1) - 1 {
				if _, err := s.Enqueue(ctx, recoveryActor(int(n%recoveryActors)), mailbox.Message{Sender: "fill", Payload: payload}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println("filled")
	select {} // held open until the parent's kill -9
}

// BenchmarkRecovery1M: a child process fills a store with 1,000,000
// queued messages (relaxed durability) and is killed with SIGKILL while
// holding it; the clock then runs from opening the store and starting a
// core on it until the first message has been handled and committed.
// Target: under 2 s.
func BenchmarkRecovery1M(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), envFill+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(b, err)
		require.NoError(b, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(b, err, "the filling child died")
		require.Equal(b, "filled\n", line)
		require.NoError(b, cmd.Process.Kill())
		_ = cmd.Wait()

		b.StartTimer()
		start := time.Now()
		cfg := core.Config{
			OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
				opts.Durability = mailbox.DurabilityRelaxed
				return pebblestore.Open(dir, opts)
			},
			Behaviours: map[string]core.BehaviourConfig{"ckv": {Binary: filepath.Join(benchPlugins, "ckv1")}},
			SocketDir:  os.TempDir(),
			Logger:     slog.New(slog.DiscardHandler),
		}
		for a := 0; a < recoveryActors; a++ {
			cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: recoveryActor(a), Behaviour: "ckv"})
		}
		c, err := core.New(cfg)
		require.NoError(b, err)
		opened := time.Since(start)
		require.NoError(b, c.Start(ctx))
		first := time.Duration(0)
		for first == 0 {
			for a := 0; a < recoveryActors && first == 0; a++ {
				st, err := c.Store().Stats(recoveryActor(a))
				require.NoError(b, err)
				if st.Acked > 0 {
					first = time.Since(start)
				}
			}
			require.NoError(b, ctx.Err(), "no message handled")
			if first == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		b.StopTimer()
		var depth uint64
		for a := 0; a < recoveryActors; a++ {
			st, _ := c.Store().Stats(recoveryActor(a))
			depth += st.Depth + st.Acked
		}
		require.GreaterOrEqual(b, depth, uint64(recoveryMessages), "messages lost by the kill -9")
		require.NoError(b, c.Shutdown(context.Background()))
		cancel()
		b.ReportMetric(float64(opened.Milliseconds()), "open-ms")
		b.ReportMetric(float64(first.Milliseconds()), "first-handled-ms")
	}
}

// BenchmarkPingPong: a client calls actor "ping", whose handler calls
// actor "pong" and replies its answer: two durable messages, two commits
// and two plugin round trips per iteration (sync durability, one plugin
// process for both actors). Closed loop, one caller; reports p50 and p99
// of the round trip.
func BenchmarkPingPong(b *testing.B) {
	dir := b.TempDir()
	cfg := core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			return pebblestore.Open(dir, opts)
		},
		Behaviours: map[string]core.BehaviourConfig{"pingpong": {Binary: filepath.Join(benchPlugins, "pingpong")}},
		Actors:     []core.ActorConfig{{Name: "ping", Behaviour: "pingpong"}, {Name: "pong", Behaviour: "pingpong"}},
		SocketDir:  os.TempDir(),
	}
	c, err := core.New(cfg)
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(b, c.Start(ctx))
	defer func() { _ = c.Shutdown(context.Background()) }()
	// Warm up: both actors running and the module connected.
	_, err = c.Call(ctx, "ping", []byte("ping:pong"), core.SendOptions{})
	require.NoError(b, err)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		reply, err := c.Call(ctx, "ping", []byte("ping:pong"), core.SendOptions{})
		require.NoError(b, err)
		require.Equal(b, "pong", string(reply))
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(float64(b.N)/el.Seconds(), "rtt/s")
}
