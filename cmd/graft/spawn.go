package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

// The commands of actors made at run time and of timers: spawn, destroy
// (which removes an actor for good; stop keeps its data) and timers.

func newSpawnCmd(e *env, cf *clientFlags) *cobra.Command {
	var behaviour, initArg string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "spawn NAME --behaviour B [--init PAYLOAD]",
		Short: "Create an actor at run time",
		Long: `Spawn creates actor NAME, driven by behaviour B (one declared under behaviours:
in the config). It is registered durably: it survives a crash and restarts of
the core, shows in ` + "`graft status`" + ` (origin "spawn") and is supervised like a
configured actor; it starts asynchronously, as every actor does. --init
PAYLOAD queues PAYLOAD as its first message, in the same write that creates
it (- reads it from stdin).

Spawning a name that exists with the same behaviour changes nothing (and
queues no --init), so a retried spawn spawns once; with another behaviour it
fails, naming both. ` + "`graft destroy NAME`" + ` removes the actor again.`,
		Example: `  graft spawn account-42 --behaviour account --config graft.yaml
  graft spawn order-7 --behaviour order --init '{"items": 3}'
  graft spawn order-7 --behaviour order --json   # again: "created": false`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if behaviour == "" {
				return &usageError{fmt.Errorf("graft spawn %s needs --behaviour B: the behaviour that drives it (see `graft spawn --help`)", args[0])}
			}
			req := api.SpawnRequest{Behaviour: behaviour}
			if cmd.Flags().Changed("init") {
				payload, err := readPayload(e, initArg)
				if err != nil {
					return err
				}
				req.Init = payload
			}
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := c.Spawn(ctx, args[0], req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, r)
			}
			if r.Created {
				_, err = fmt.Fprintf(e.stdout, "spawned %s (behaviour %s)\n", r.Actor, r.Behaviour)
				return err
			}
			note := ""
			if len(req.Init) > 0 {
				note = "; --init was not queued"
			}
			_, err = fmt.Fprintf(e.stdout, "%s already exists with behaviour %s: nothing changed%s\n", r.Actor, r.Behaviour, note)
			return err
		},
	}
	cmd.Flags().StringVarP(&behaviour, "behaviour", "b", "", "the behaviour that drives the actor (required)")
	cmd.Flags().StringVar(&initArg, "init", "", "first message, queued with the spawn (- reads stdin)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newDestroyCmd(e *env, cf *clientFlags) *cobra.Command {
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "destroy ACTOR [--yes]",
		Short: "Remove an actor for good: its mailbox, state and timers too",
		Long: `Destroy stops ACTOR at once (its batch in flight is abandoned) and removes it
for good: its registry entry, mailbox, state, replies, idempotency window,
dead letters, the timers it set and the sends scheduled to it with
` + "`graft send --after`" + ` are deleted, and calls waiting on it fail.
Afterwards a send to it is refused as to an unknown actor, except that
a name a virtual behaviour owns is created anew, empty, by its next message,
and an actor the config lists is registered again, empty, when the core
next starts. An actor that other running actors require is refused:
destroy them first. To stop an actor and keep its data, use ` + "`graft stop`" + `.

Destroy asks for confirmation on the terminal (type the actor's name, or
yes); --yes skips the question, and is required when stdin is not a
terminal (scripts).`,
		Example: `  graft destroy order-7 --config graft.yaml
  graft destroy order-7 --yes     # in a script
  graft stop order-7              # keeps its mailbox and state instead`,
		Args: exactArgs(1, "ACTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			actor := args[0]
			if !yes {
				if err := confirmDestroy(cmd, e, cf, actor); err != nil {
					return err
				}
			}
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			if err := c.Destroy(ctx, actor); err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, api.ActorResponse{Actor: actor, Action: "destroy"})
			}
			_, err = fmt.Fprintf(e.stdout, "destroyed %s: removed for good, with its mailbox, state and timers\n", actor)
			return err
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "destroy without asking for confirmation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// confirmDestroy asks the operator on the terminal to confirm the
// destruction of actor by typing its name (or yes). Without a terminal to
// ask on it refuses, naming --yes. An actor the core does not know fails
// here, before any question.
func confirmDestroy(cmd *cobra.Command, e *env, cf *clientFlags, actor string) error {
	if !stdinIsTerminal(e.stdin) {
		return &usageError{fmt.Errorf("graft destroy %s removes the actor and its data for good and asks for confirmation, but stdin is not a terminal: add --yes to go ahead (`graft stop %s` stops it and keeps its data)", actor, actor)}
	}
	c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
	if err != nil {
		return err
	}
	st, err := c.State(ctx, actor)
	var timers []api.Timer
	if err == nil {
		timers, err = c.Timers(ctx, actor)
	}
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "Destroy actor %s (%s; %s; %d pending timer(s)) for good?\n"+
		"  Its registry entry, mailbox, state, replies, idempotency window, dead letters\n"+
		"  and the timers it set are deleted; calls waiting on it fail.\n"+
		"  (`graft stop %s` stops it and keeps its data.)\n"+
		"Type the actor's name, or yes, to confirm: ",
		actor, st.Behaviour, describeState(st.Module, st.Schema, st.Size, st.Empty), len(timers), actor)
	answer, err := readAnswer(cmd.Context(), e.stdin, confirmWithin)
	if err != nil {
		return fmt.Errorf("no answer, nothing was destroyed: %w", err)
	}
	if a := strings.TrimSpace(answer); a != actor && strings.ToLower(a) != "yes" {
		return fmt.Errorf("not confirmed (answer %q): actor %s is kept", a, actor)
	}
	return nil
}

func newTimersCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "timers ACTOR",
		Short: "List an actor's pending timers",
		Long: `Timers lists ACTOR's pending durable timers, earliest first: those its
handlers set (with ctx.SendAfter or ctx.SendAt; OWNER is the actor, TO the
actor that gets the message) and the sends scheduled to it with
` + "`graft send ACTOR PAYLOAD --after D`" + ` (OWNER -). Each fires once, as an
ordinary message carrying its timer id; one that came due while the core was
down fires when it starts.`,
		Example: `  graft timers order-7 --config graft.yaml
  graft timers order-7 --json | jq '.[].due'`,
		Args: exactArgs(1, "ACTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			ts, err := c.Timers(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, ts)
			}
			if len(ts) == 0 {
				_, err := fmt.Fprintf(e.stdout, "%s has no pending timers\n", args[0])
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOWNER\tTO\tDUE\tIN\tSIZE\tPAYLOAD")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d B\t%s\n", t.ID, dash(t.Owner), t.To,
					t.Due.Local().Format(time.RFC3339), relative(t.Due.Sub(now)), t.Size, preview(t.Payload, 40))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the timers as JSON")
	return cmd
}

// relative is a due time seen from now: "in 12s", "in 1h5m", "due now",
// or "overdue 3s" (a timer the core fires at once).
func relative(d time.Duration) string {
	switch r := d.Round(time.Second); {
	case r > 0:
		return "in " + shortDuration(r)
	case r < 0:
		return "overdue " + shortDuration(-r)
	}
	return "due now"
}

// shortDuration is d in its two largest units, truncated: 12s, 5m3s,
// 1h5m, 2d3h.
func shortDuration(d time.Duration) string {
	units := []struct {
		name string
		size time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}
	for i, u := range units {
		n := d / u.size
		if n == 0 {
			continue
		}
		s := strconv.FormatInt(int64(n), 10) + u.name
		if i+1 < len(units) {
			if m := d % u.size / units[i+1].size; m > 0 {
				s += strconv.FormatInt(int64(m), 10) + units[i+1].name
			}
		}
		return s
	}
	return "0s"
}

// preview is payload in at most n characters: quoted when it is text,
// else base64.
func preview(payload []byte, n int) string {
	if utf8.Valid(payload) {
		return truncate(strconv.Quote(string(payload)), n)
	}
	return truncate("base64:"+base64.StdEncoding.EncodeToString(payload), n)
}
