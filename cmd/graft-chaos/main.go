// Command graft-chaos runs graft's chaos harness (package internal/chaos):
// the real graft core under load and injected faults, then a check of the
// whole history. It prints a progress line every few seconds on stderr and
// one summary line on stdout, and exits 1 on any violation (printing the
// seed to replay with --seed) or 2 if the harness itself failed.
//
//	go run ./cmd/graft-chaos --events 50            # the CI run
//	go run ./cmd/graft-chaos --seed 42 --events 1000
//	go run ./cmd/graft-chaos --cluster --events 30   # 3 cores over 3 etcd members
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/graft-host/graft/internal/chaos"
)

func main() {
	opts := chaos.Options{Progress: os.Stderr}
	flag.Int64Var(&opts.Seed, "seed", time.Now().UnixNano()%1_000_000, "seed of the fault schedule (replay a failure with the seed it printed)")
	flag.IntVar(&opts.Events, "events", 50, "number of faults to inject")
	flag.DurationVar(&opts.MeanGap, "gap", 1500*time.Millisecond, "mean time between two faults")
	flag.IntVar(&opts.KVActors, "actors", 4, "actors of the upgradable behaviour")
	flag.IntVar(&opts.Callers, "callers", 3, "concurrent callers of the register actor")
	flag.IntVar(&opts.Rate, "rate", 200, "sends and calls per second, in all")
	flag.BoolVar(&opts.Keep, "keep", false, "keep the run's folder (config, store, core.log) even when the run passes")
	cluster := flag.Bool("cluster", false, "run 3 cores as a cluster over a 3-member etcd cluster, with kills and stops of cores and etcd members")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "chaos: seed %d, %d events (replay with --seed %d)\n", opts.Seed, opts.Events, opts.Seed)
	run := chaos.Run
	if *cluster {
		run = chaos.RunCluster
	}
	res, err := run(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: seed %d: harness failed: %v\n", opts.Seed, err)
		if res.Dir != "" {
			fmt.Fprintf(os.Stderr, "chaos: the run's folder (config, store, core.log) is kept in %s\n", res.Dir)
		}
		os.Exit(2)
	}
	fmt.Println(res.Summary)
	if !res.Report.OK() {
		for _, p := range res.Report.Problems {
			fmt.Fprintln(os.Stderr, "chaos: "+p)
		}
		fmt.Fprintf(os.Stderr, "chaos: FAILED; replay with --seed %d; the run's folder is kept in %s\n", opts.Seed, res.Dir)
		os.Exit(1)
	}
	if res.Dir != "" {
		fmt.Fprintf(os.Stderr, "chaos: the run's folder is kept in %s\n", res.Dir)
	}
}
