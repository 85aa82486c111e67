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
)

// dryRunFailedError is a dry run that found actors the new version cannot
// take: `graft upgrade --dry-run` exits 4 with it.
type dryRunFailedError struct{ rep api.DryRunReport }

func (e *dryRunFailedError) Error() string {
	return fmt.Sprintf("dry run of %s: %d of %d actors failed; an upgrade to this binary is refused unless given --force", e.rep.Behaviour, e.rep.Blocking, e.rep.Actors)
}

func newUpgradeCmd(e *env, cf *clientFlags) *cobra.Command {
	var binary string
	var asJSON, dryRun, force bool
	cmd := &cobra.Command{
		Use:   "upgrade BEHAVIOUR",
		Short: "Upgrade every actor of a behaviour to a new plugin binary, in place",
		Long: `Upgrade starts the new module beside the old one, then moves the behaviour's
actors onto it one by one: each is paused between two commits, its state is
migrated by the new module, and it resumes. No queued or arriving message is
lost. Without --binary the behaviour's configured binary (rebuilt in place)
is used; a relative --binary is relative to the folder graft upgrade runs
in. A failure leaves the actor on the old version with its state
unchanged. --timeout bounds the wait (default 10m).

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
  graft upgrade greeter --binary ./plugins/greeter-v2 --force`,
		Args: exactArgs(1, "BEHAVIOUR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dryRun && force {
				return &usageError{errors.New("--dry-run and --force do not go together: a dry run moves nothing; run the upgrade with --force after it")}
			}
			if binary != "" { // the core runs in another folder: send it the path meant here
				abs, err := filepath.Abs(binary)
				if err != nil {
					return fmt.Errorf("--binary %s: %w", binary, err)
				}
				binary = abs
			}
			c, ctx, done, err := cf.client(cmd, e, 10*time.Minute)
			if err != nil {
				return err
			}
			defer done()
			if dryRun {
				rep, err := c.DryRun(ctx, args[0], binary)
				if err != nil {
					return err
				}
				if asJSON {
					err = printJSON(e.stdout, rep)
				} else {
					writeDryRun(e.stdout, rep)
				}
				if err == nil && rep.Blocking > 0 {
					err = &dryRunFailedError{rep: rep}
				}
				return err
			}
			rec, err := c.UpgradeWith(ctx, args[0], api.UpgradeRequest{Binary: binary, Force: force})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, rec)
			}
			writeRecord(e.stdout, rec)
			return nil
		},
	}
	cmd.Flags().StringVar(&binary, "binary", "", "plugin binary to upgrade to (default: the configured one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the upgrade record (or the dry run's report) as JSON")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check every actor's state against the new binary; move nothing")
	cmd.Flags().BoolVar(&force, "force", false, "upgrade even to a binary whose last dry run failed (the upgrade's own check still runs)")
	return cmd
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
}
