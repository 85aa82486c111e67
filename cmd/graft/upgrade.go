package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/upgrade"
)

// dryRunFailedError is a dry run that found actors the new version cannot
// take: `graft upgrade --dry-run` exits 4 with it.
type dryRunFailedError struct{ rep api.DryRunReport }

func (e *dryRunFailedError) Error() string {
	what := fmt.Sprintf("%d of %d actors failed", e.rep.Blocking, e.rep.Actors)
	if r := e.rep.Replay; r != nil && r.Counts["replay failed"] > 0 {
		what = fmt.Sprintf("%d of %d actors failed, %d replayed messages failed", e.rep.Blocking-r.Counts["replay failed"], e.rep.Actors, r.Counts["replay failed"])
	}
	return fmt.Sprintf("dry run of %s: %s; an upgrade to this binary is refused unless given --force", e.rep.Behaviour, what)
}

// upgradeFlags are graft upgrade's flags.
type upgradeFlags struct {
	binary, canary        string
	bake                  time.Duration
	failureRate           string
	p99Ratio              float64
	minMessages           int
	inconclusive          string
	asJSON, dryRun, force bool
	promote, abort        bool
}

func newUpgradeCmd(e *env, cf *clientFlags) *cobra.Command {
	var f upgradeFlags
	cmd := &cobra.Command{
		Use:   "upgrade BEHAVIOUR",
		Short: "Upgrade every actor of a behaviour to a new plugin binary, in place",
		Long: `Upgrade starts the new module beside the old one, then moves the behaviour's
actors onto it one by one: each is paused between two commits, its state is
migrated by the new module, and it resumes. No queued or arriving message is
lost. Without --binary the behaviour's configured binary (rebuilt in place)
is used; a relative --binary is relative to the folder graft upgrade runs
in. A failure leaves the actor on the old version with its state
unchanged. --timeout bounds the wait (default 10m, plus the bake).

--canary 10% (or --canary a,b) moves only that share of the actors (picked
by a hash of their names), or those actors, first. Both versions then serve
for --bake while the canary is compared with the actors left on the old
version: the rate of failed messages (errors, panics, module crashes and
hangs; a handler's refusal is an answer, not a failure), dead letters, and
handle latency p99. When the canary is no worse than the behaviour's
thresholds allow (behaviours.B.upgrade in the config; by default a failure
rate 1 point higher, and a p99 1.5 times the old one's), the rest are moved;
otherwise the canary is moved back with the new version's down-migration,
by itself, and graft exits 1 with the numbers that decided. A behaviour
with a canary in its config upgrades that way without --canary too.
--promote and --abort end a bake early. The bake goes on in the core if
graft upgrade stops waiting; graft status shows its phase and time left.

--dry-run pauses and moves nothing: it starts the new module beside the old
one, migrates every actor's committed state up with it and back down with
its down-step, and reports the actors whose migration fails, panics, times
out, or does not come back the same (passive actors are not woken). The
report is recorded in the history. If an actor's migration failed, panicked
or timed out, graft exits 4 and an upgrade to the same binary is refused
unless given --force; states with no way back down, or that do not come
back the same, are warnings (a rollback would not take them).`,
		Example: `  graft upgrade greeter --config graft.yaml
  graft upgrade greeter --binary ./plugins/greeter-v2 --dry-run
  graft upgrade greeter --binary ./plugins/greeter-v2 --canary 10% --bake 60s
  graft upgrade greeter --promote
  graft upgrade greeter --binary ./plugins/greeter-v2 --force`,
		Args: exactArgs(1, "BEHAVIOUR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.promote || f.abort {
				return decide(cmd, e, cf, args[0], f)
			}
			if f.binary != "" { // the core runs in another folder: send it the path meant here
				abs, err := filepath.Abs(f.binary)
				if err != nil {
					return fmt.Errorf("--binary %s: %w", f.binary, err)
				}
				f.binary = abs
			}
			if f.dryRun {
				return dryRun(cmd, e, cf, args[0], f)
			}
			return runUpgrade(cmd, e, cf, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.binary, "binary", "", "plugin binary to upgrade to (default: the configured one)")
	fl.BoolVar(&f.asJSON, "json", false, "print the upgrade record (or the dry run's report) as JSON")
	fl.BoolVar(&f.dryRun, "dry-run", false, "check every actor's state against the new binary; move nothing")
	fl.BoolVar(&f.force, "force", false, "upgrade even to a binary whose last dry run failed (the upgrade's own check still runs)")
	fl.StringVar(&f.canary, "canary", "", "move this share (10%) or these actors (a,b) first, bake, then promote or roll back")
	fl.DurationVar(&f.bake, "bake", 0, "how long the canary serves beside the old version before the decision (with --canary)")
	fl.StringVar(&f.failureRate, "failure-rate-increase", "", "with --canary: how much higher its failure rate may be, e.g. 1% (default: the config's, or 1%)")
	fl.Float64Var(&f.p99Ratio, "p99-ratio", 0, "with --canary: how many times the old version's handle p99 its own may be (default: the config's, or 1.5)")
	fl.IntVar(&f.minMessages, "min-messages", 0, "with --canary: attempts it makes before a gate can fail it (default: the config's, or 20)")
	fl.StringVar(&f.inconclusive, "inconclusive", "", "with --canary: what a bake on too little traffic to judge ends in: promote, rollback or hold (default: the config's, or promote)")
	fl.BoolVar(&f.promote, "promote", false, "end the behaviour's canary bake now and move the rest of its actors")
	fl.BoolVar(&f.abort, "abort", false, "end the behaviour's canary bake now and roll the canary back")
	return cmd
}

// check refuses flags that do not go together, before anything is asked
// of the core.
func (f upgradeFlags) check() error {
	usage := func(msg string) error { return &usageError{errors.New(msg)} }
	switch {
	case f.promote && f.abort:
		return usage("--promote and --abort do not go together: choose one")
	case (f.promote || f.abort) && (f.binary != "" || f.dryRun || f.force || f.canary != "" || f.bake != 0):
		return usage("--promote and --abort take only the behaviour: they end the canary bake already running")
	case f.dryRun && f.force:
		return usage("--dry-run and --force do not go together: a dry run moves nothing; run the upgrade with --force after it")
	case f.dryRun && f.canary != "":
		return usage("--dry-run and --canary do not go together: a dry run moves nothing; run the canary after it")
	case f.bake != 0 && f.canary == "":
		return usage("--bake without --canary: a bake is how long a canary serves beside the old version; give --canary 10% (or actor names) too")
	case f.canary == "" && (f.failureRate != "" || f.p99Ratio != 0 || f.minMessages != 0 || f.inconclusive != ""):
		return usage("--failure-rate-increase, --p99-ratio, --min-messages and --inconclusive are a canary's gates: give --canary and --bake too")
	case f.inconclusive != "" && f.inconclusive != "promote" && f.inconclusive != "rollback" && f.inconclusive != "hold":
		return usage(fmt.Sprintf("--inconclusive %q: give promote, rollback or hold (what a bake on too little traffic to judge ends in)", f.inconclusive))
	case f.canary != "" && f.bake <= 0:
		return usage("--canary needs --bake, above zero (e.g. --bake 60s): how long both versions serve before the decision")
	case f.canary != "":
		if _, err := upgrade.ParseCanary(f.canary, f.bake); err != nil { // the core's own reading of it
			return &usageError{fmt.Errorf("--canary: %w", err)}
		}
	}
	return nil
}

// dryRun runs and prints a dry run.
func dryRun(cmd *cobra.Command, e *env, cf *clientFlags, behaviour string, f upgradeFlags) error {
	c, ctx, done, err := cf.client(cmd, e, 10*time.Minute)
	if err != nil {
		return err
	}
	defer done()
	rep, err := c.DryRun(ctx, behaviour, f.binary)
	if err != nil {
		return err
	}
	if f.asJSON {
		err = printJSON(e.stdout, rep)
	} else {
		writeDryRun(e.stdout, rep)
	}
	if err == nil && rep.Blocking > 0 {
		err = &dryRunFailedError{rep: rep}
	}
	return err
}

// runUpgrade runs an upgrade and prints its record; while it runs, its
// phases (a canary's, a bake's time left) are told on stderr.
func runUpgrade(cmd *cobra.Command, e *env, cf *clientFlags, behaviour string, f upgradeFlags) error {
	c, ctx, done, err := cf.client(cmd, e, 10*time.Minute+f.bake)
	if err != nil {
		return err
	}
	defer done()
	req := api.UpgradeRequest{
		Binary: f.binary, Force: f.force, Canary: f.canary, BakeSeconds: f.bake.Seconds(),
		P99Ratio: f.p99Ratio, MinMessages: f.minMessages, Inconclusive: f.inconclusive,
	}
	if f.failureRate != "" {
		if req.FailureRateIncrease, err = parseShare(f.failureRate); err != nil {
			return &usageError{fmt.Errorf("--failure-rate-increase %s: %w", f.failureRate, err)}
		}
	}
	stopFollowing := followUpgrade(ctx, c, e.stderr, behaviour)
	rec, err := c.UpgradeWith(ctx, behaviour, req)
	stopFollowing()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w; the upgrade of %s goes on in the core: `graft status` shows its phase, and `graft upgrade %s --promote` or `--abort` ends a canary's bake", err, behaviour, behaviour)
		}
		return err
	}
	if f.asJSON {
		return printJSON(e.stdout, rec)
	}
	writeRecord(e.stdout, rec)
	return nil
}

// writeDryRun prints a dry run's report: its summary, then each kind of
// failure with its actors.
func writeDryRun(w io.Writer, rep api.DryRunReport) {
	fmt.Fprintf(w, "dry run of %s %s -> %s: %d actors (%d without state), migrations %d ok, round trip %d ok, %d failed (%.2fs)\n",
		rep.Behaviour, dash(rep.From), dash(rep.To), rep.Actors, rep.NoState, rep.Migrated, rep.RoundTrip, rep.Failed, rep.TookSecond)
	kinds := make([]string, 0, len(rep.Failures))
	for k := range rep.Failures {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fs := rep.Failures[k]
		fmt.Fprintf(w, "  %s: %d\n", k, max(rep.Counts[k], len(fs)))
		for _, f := range fs {
			if f.Detail != "" {
				fmt.Fprintf(w, "    %s: %s\n", f.Actor, f.Detail)
			} else {
				fmt.Fprintf(w, "    %s\n", f.Actor)
			}
		}
	}
	if r := rep.Replay; r != nil {
		writeReplay(w, r)
	}
}

// writeReplay prints what the dry run's replay of kept traffic found: a
// line of counts, then a few examples of each kind.
func writeReplay(w io.Writer, r *api.DryRunReplay) {
	kinds := []string{"replay failed", "replies differ", "sends differ", "state differs"}
	fmt.Fprintf(w, "replayed %d messages: %d failures, replies differ in %d, sends differ in %d, state differs in %d",
		r.Messages, r.Counts[kinds[0]], r.Counts[kinds[1]], r.Counts[kinds[2]], r.Counts[kinds[3]])
	if n := r.Counts["skipped (calls another actor)"]; n > 0 {
		fmt.Fprintf(w, "; %d skipped (their handlers call other actors, which a replay does not)", n)
	}
	fmt.Fprintln(w)
	for _, k := range kinds {
		ex := r.Examples[k]
		if len(ex) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s: %d\n", k, r.Counts[k])
		for _, f := range ex[:min(len(ex), 5)] {
			fmt.Fprintf(w, "    %s: %s\n", f.Actor, f.Detail)
		}
	}
}
