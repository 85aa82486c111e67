package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

// newActorCmd builds stop and start, which differ only in the action they
// ask for (destroy, which asks first, is newDestroyCmd).
func newActorCmd(e *env, cf *clientFlags, action, short, long string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     action + " ACTOR",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  graft %s greeter --config graft.yaml\n  GRAFT_SOCKET=run/graft.sock graft %s greeter", action, action),
		Args:    exactArgs(1, "ACTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			do := map[string]func() error{
				"stop":  func() error { return c.Stop(ctx, args[0]) },
				"start": func() error { return c.Start(ctx, args[0]) },
			}[action]
			if err := do(); err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, api.ActorResponse{Actor: args[0], Action: action})
			}
			past := map[string]string{"stop": "stopped", "start": "started"}[action]
			fmt.Fprintf(e.stdout, "%s %s\n", past, args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newDeadLettersCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON, all bool
	var retry string
	cmd := &cobra.Command{
		Use:     "deadletters ACTOR",
		Aliases: []string{"dl"},
		Short:   "List an actor's dead letters, or retry them",
		Long: `Deadletters lists the messages of ACTOR that failed too often and were set
aside (with their attempts and last error), oldest first. --retry ID moves one
back into the mailbox (ID is its seq as listed, or its message id); --all
moves every one back. A retried message gets a new sequence number and its
attempts start over.`,
		Example: `  graft deadletters greeter --config graft.yaml
  graft deadletters greeter --json
  graft deadletters greeter --retry 17
  graft deadletters greeter --retry order-42
  graft deadletters greeter --all`,
		Args: exactArgs(1, "ACTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			actor := args[0]
			if retry != "" || all {
				req := api.RetryRequest{All: all}
				if retry != "" {
					if seq, err := strconv.ParseUint(retry, 10, 64); err == nil {
						req.Seq = seq
					}
					req.ID = retry // an id that looks like a number matches either way
				}
				r, err := c.Retry(ctx, actor, req)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(e.stdout, r)
				}
				if len(r.Requeued) == 0 {
					fmt.Fprintf(e.stdout, "%s has no dead letters\n", actor)
				}
				for _, q := range r.Requeued {
					fmt.Fprintf(e.stdout, "requeued dead letter %d of %s as message %d\n", q.Seq, actor, q.NewSeq)
				}
				return nil
			}
			dls, err := c.DeadLetters(ctx, actor)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, dls)
			}
			if len(dls) == 0 {
				fmt.Fprintf(e.stdout, "%s has no dead letters\n", actor)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tID\tSENDER\tATTEMPTS\tDEAD AT\tPAYLOAD\tLAST ERROR")
			for _, d := range dls {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", d.Seq, dash(d.ID), d.Sender, d.Attempts,
					d.DeadAt.Local().Format(time.DateTime), truncate(strconv.Quote(string(d.Payload)), 40), d.LastError)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&retry, "retry", "", "move the dead letter with this seq or message id back into the mailbox")
	cmd.Flags().BoolVar(&all, "all", false, "move every dead letter back into the mailbox")
	cmd.MarkFlagsMutuallyExclusive("retry", "all")
	return cmd
}
