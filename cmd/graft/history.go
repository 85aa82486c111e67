package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

func newHistoryCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the upgrades and rollbacks this core's store has recorded",
		Long: `History lists every upgrade and rollback, oldest first: the behaviour, the
module versions it moved between, when, how it ended and why, then the ones
still running (id "-"). --json prints the recorded ones, with the per-actor
steps and their pause times.`,
		Example: `  graft history --config graft.yaml
  graft history --json | jq '.[-1]'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.client(cmd, e, 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			recs, err := c.History(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, recs)
			}
			// The ops still running (a canary baking) are rows too, last:
			// the history records an op once it ends.
			if ups, err := c.Upgrades(ctx); err == nil {
				recs = append(recs, runningRows(ups)...)
			}
			if len(recs) == 0 {
				fmt.Fprintln(e.stdout, "no upgrades yet")
				return nil
			}
			return writeHistory(e.stdout, recs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeHistory(w io.Writer, recs []api.UpgradeRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cluster := slices.ContainsFunc(recs, func(r api.UpgradeRecord) bool { return r.Member != "" || len(r.Members) > 0 })
	members := func(api.UpgradeRecord) string { return "" }
	if cluster {
		// One row per cluster op: the members that carried out a share.
		members = func(r api.UpgradeRecord) string {
			names := []string{r.Member}
			if len(r.Members) > 0 {
				names = names[:0]
				for _, m := range r.Members {
					names = append(names, m.Member)
				}
			}
			return strings.Join(names, ",") + "\t"
		}
		fmt.Fprint(tw, "ID\tKIND\tBEHAVIOUR\tFROM\tTO\tSTARTED\tTOOK\tMEMBERS\tACTORS\tOUTCOME\n")
	} else {
		fmt.Fprintln(tw, "ID\tKIND\tBEHAVIOUR\tFROM\tTO\tSTARTED\tTOOK\tACTORS\tOUTCOME")
	}
	for _, r := range recs {
		outcome := r.Outcome
		if r.Canary != "" {
			outcome += " (canary " + r.Canary + ")"
		}
		// A rolled back canary's error repeats what its canary note says.
		repeats := r.Canary != "" && strings.Contains(r.Canary, strings.TrimPrefix(r.Error, "canary rolled back: "))
		if r.Error != "" && !repeats {
			// One row per record: an error that lists each actor on a
			// line of its own would break the table (and awk).
			outcome += ": " + strings.Join(strings.Fields(strings.ReplaceAll(r.Error, "\n", "; ")), " ")
		}
		took := "-"
		if !r.Ended.IsZero() {
			took = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
		}
		id := "-" // in progress
		if r.ID != 0 {
			id = strconv.FormatUint(r.ID, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s%d\t%s\n", id, r.Kind, r.Behaviour, dash(r.From), dash(r.To),
			r.Started.Local().Format(time.DateTime), took, members(r), r.Actors, outcome)
	}
	return tw.Flush()
}

// runningRows are the ops in progress as history rows: id "-", no end,
// outcome "in progress: PHASE".
func runningRows(ups []api.UpgradeProgress) []api.UpgradeRecord {
	var out []api.UpgradeRecord
	for _, u := range ups {
		out = append(out, api.UpgradeRecord{Kind: u.Kind, Behaviour: u.Behaviour, From: u.From, To: u.To, Started: u.Started,
			Outcome: "in progress: " + u.Phase, Actors: u.Moved, Canary: u.Canary})
	}
	return out
}

// writeRecord reports one finished upgrade or rollback.
func writeRecord(w io.Writer, r api.UpgradeRecord) {
	fmt.Fprintf(w, "%s of %s: %s -> %s, %s", r.Kind, r.Behaviour, dash(r.From), dash(r.To), r.Outcome)
	if r.Error != "" {
		fmt.Fprintf(w, ": %s", r.Error)
	}
	if r.Member != "" {
		// In a cluster the answer is this member's share; the others
		// move theirs meanwhile.
		fmt.Fprintf(w, " (%d actors on member %s; the other members move theirs: `graft history` shows the whole op)\n", r.Actors, r.Member)
	} else {
		fmt.Fprintf(w, " (%d actors)\n", r.Actors)
	}
	if r.Canary != "" {
		fmt.Fprintf(w, "  canary %s\n", r.Canary)
	}
}

func newRollbackCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback BEHAVIOUR",
		Short: "Move every actor of a behaviour back to its previous version",
		Long: `Rollback undoes the last upgrade of BEHAVIOUR: the previous module (kept by
the core in its binary cache) is started again and each actor's state is
migrated back down, one actor at a time, with no message lost. --timeout
bounds the wait (default 10m).`,
		Example: `  graft rollback greeter --config graft.yaml`,
		Args:    exactArgs(1, "BEHAVIOUR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.client(cmd, e, 10*time.Minute)
			if err != nil {
				return err
			}
			defer done()
			rec, err := c.Rollback(ctx, args[0])
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
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rollback record as JSON")
	return cmd
}
