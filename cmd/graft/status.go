package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

func newStatusCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every actor: status, versions, mailbox depth, counters",
		Long: `Status prints one row per actor: its behaviour, the module (code) version
and state schema version of its committed state (for an actor that has not
handled a message yet: of the module it runs on), its supervisor status
(starting, running, backoff, stopped, failed, or passive: out of memory
until its next message, see passivate_after), mailbox depth, messages in
flight, messages processed, restarts (actor/module process), dead letters,
the last exit of its module process, its uptime, and its origin: config
(listed in the config), spawn (` + "`graft spawn`" + ` or a handler's ctx.Spawn) or
virtual (created by the first message to a name its virtual behaviour owns).
An actor the store keeps but the core does not run (it, or its behaviour,
left the config) shows as unconfigured. It answers while actors start, hang
or upgrade.

--watch redraws the table every --interval until interrupted; with --json it
prints one JSON document per line instead.`,
		Example: `  graft status --config graft.yaml
  graft status --json | jq '.actors[] | {name, depth}'
  graft status --watch --interval 500ms`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !watch {
				return statusOnce(cmd, e, cf, asJSON, false)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cmd.SetContext(ctx)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				if err := statusOnce(cmd, e, cf, asJSON, true); err != nil && ctx.Err() == nil {
					fmt.Fprintf(e.stderr, "graft: %v\n", err) // keep watching: the core may come back
				}
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with --watch: one document per line)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw live until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "redraw interval of --watch")
	return cmd
}

func statusOnce(cmd *cobra.Command, e *env, cf *clientFlags, asJSON, live bool) error {
	c, ctx, done, err := cf.client(cmd, e, 10*time.Second)
	if err != nil {
		return err
	}
	defer done()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if live {
			return writeJSONLine(e.stdout, st)
		}
		return printJSON(e.stdout, st)
	}
	if live && isTerminal(e.stdout) {
		fmt.Fprint(e.stdout, "\033[H\033[2J") // home and clear: redraw in place
	}
	if live {
		fmt.Fprintf(e.stdout, "graft core pid %d on %s at %s\n\n", st.Core.PID, st.Core.Socket, time.Now().Format(time.TimeOnly))
	}
	if st.Waiting != "" {
		fmt.Fprintf(e.stdout, "graft core pid %d holds no actors: %s\n", st.Core.PID, st.Waiting)
		return nil
	}
	if err := writeStatusTable(e.stdout, st.Actors); err != nil {
		return err
	}
	if err := writeMembers(e.stdout, st.Members); err != nil {
		return err
	}
	return writeUpgrades(e.stdout, st.Upgrades)
}

// writeUpgrades prints the upgrades in progress below the actors, one line
// each, with a canary's phase and its bake's time left.
func writeUpgrades(w io.Writer, ups []api.UpgradeProgress) error {
	if len(ups) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UPGRADING\tKIND\tFROM\tTO\tPHASE\tSINCE")
	for _, u := range ups {
		phase := u.Phase
		if u.ToMove > 0 && u.Phase != "baking" {
			phase += fmt.Sprintf(" (%d of %d moved)", u.Moved, u.ToMove)
		}
		switch {
		case u.Canary != "" && u.Phase == "baking" && u.Verdict != "": // held for traffic
			phase = fmt.Sprintf("held canary %s (%s) past its bake, for traffic: --promote or --abort ends it; %s", u.Canary, list(u.Group, 3), truncate(u.Verdict, 100))
		case u.Canary != "" && u.Phase == "baking":
			phase = fmt.Sprintf("baking canary %s (%s), %s left", u.Canary, list(u.Group, 3),
				time.Duration(u.BakeLeftSeconds*float64(time.Second)).Round(time.Second))
		case u.Canary != "" && u.Verdict != "":
			phase = fmt.Sprintf("%s canary %s: %s", u.Phase, u.Canary, truncate(u.Verdict, 100))
		case u.Canary != "":
			phase = fmt.Sprintf("moving canary %s (%s)", u.Canary, list(u.Group, 3))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Behaviour, u.Kind, dash(u.From), dash(u.To), phase,
			time.Since(u.Started).Round(time.Second))
	}
	return tw.Flush()
}

// writeJSONLine writes v as one line of JSON (a stream of documents).
func writeJSONLine(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// writeStatusTable prints the human status table.
func writeStatusTable(w io.Writer, actors []api.ActorStatus) error {
	if len(actors) == 0 {
		_, err := fmt.Fprintln(w, "no actors (declare them under actors: in the config, or create one with `graft spawn`)")
		return err
	}
	clustered := slices.ContainsFunc(actors, func(a api.ActorStatus) bool { return a.Owner != "" })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "ACTOR\tBEHAVIOUR\tMODULE\tSCHEMA\tSTATUS\tDEPTH\tIN FLIGHT\tPROCESSED\tRESTARTS A/M\tDEAD\tLAST EXIT\tUPTIME\tORIGIN"
	if clustered {
		header += "\tOWNER"
	}
	fmt.Fprintln(tw, header)
	for _, a := range actors {
		status := a.Status
		if a.LastError != "" && status != "running" {
			status += " (" + truncate(a.LastError, 60) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d/%d\t%d\t%s\t%s\t%s",
			a.Name, a.Behaviour, dash(a.Module), a.Schema, status, a.Depth, a.InFlight, a.Processed,
			a.Restarts, a.ModuleRestarts, a.DeadLetters, dash(a.LastExit), uptime(a.UptimeSeconds), dash(a.Origin))
		if clustered {
			fmt.Fprintf(tw, "\t%s", dash(a.Owner))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func uptime(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	d := time.Duration(sec * float64(time.Second))
	if d < 24*time.Hour {
		return d.Round(time.Second).String()
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d" + (d % (24 * time.Hour)).Round(time.Minute).String()
}

// writeMembers prints a cluster's live members below the actors.
func writeMembers(w io.Writer, members []api.MemberStatus) error {
	if len(members) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nMEMBER\tPID\tACTORS\tUP\tSOCKET")
	for _, m := range members {
		name := m.Name
		if m.Self {
			name += " (this one)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", name, m.Pid, m.Actors, uptime(time.Since(m.Since).Seconds()), dash(m.Socket))
	}
	return tw.Flush()
}
