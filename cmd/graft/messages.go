package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

func newSendCmd(e *env, cf *clientFlags) *cobra.Command {
	var id string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "send ACTOR PAYLOAD",
		Short: "Send a message to an actor (returns once it is durable)",
		Long: `Send enqueues PAYLOAD in ACTOR's mailbox and returns once the message is
durable: it survives a crash of the core from then on. PAYLOAD - reads the
payload from stdin. With --id the send is idempotent: a retry with the same
id enqueues nothing and reports the original sequence number.`,
		Example: `  graft send greeter hello --config graft.yaml
  graft send greeter hello --id order-42    # safe to retry
  echo '{"n": 1}' | graft send counter -`,
		Args: exactArgs(2, "ACTOR and PAYLOAD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := readPayload(e, args[1])
			if err != nil {
				return err
			}
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := c.Send(ctx, args[0], api.SendRequest{Payload: payload, ID: id})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, r)
			}
			note := ""
			if r.Duplicate {
				note = fmt.Sprintf(" (duplicate of an earlier send with id %q: nothing new enqueued; %s)", id, r.Outcome)
			}
			fmt.Fprintf(e.stdout, "sent to %s as message %d%s\n", r.Actor, r.Seq, note)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "idempotency id, at most 256 bytes: a retry with the same id is not enqueued again")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the receipt as JSON")
	return cmd
}

func newCallCmd(e *env, cf *clientFlags) *cobra.Command {
	var id string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "call ACTOR PAYLOAD",
		Short: "Send a message to an actor and print its reply",
		Long: `Call sends PAYLOAD to ACTOR and prints the handler's reply (raw bytes, as the
handler wrote them). PAYLOAD - reads the payload from stdin. --timeout bounds
the wait (default 30s); a call that times out stays queued and is applied
once: retry it with the same --id to get its reply without applying it twice.

A handler that refuses the request (it returned sdk.Terminal(err)) makes call
print the refusal on stderr and exit with status 3; with --json the response
on stdout has "refused": true and the text in "error". The refusal is the
message's committed outcome: a retry with the same --id gets it again.

Exit status: 0 replied, 1 failed (no reply, timeout, unknown actor...),
2 misused command line, 3 refused by the handler.`,
		Example: `  graft call greeter hello --config graft.yaml
  graft call counter incr --id req-7 --timeout 5s
  graft call counter incr --id req-7     # same reply; applied once
  cat request.json | graft call api -`,
		Args: exactArgs(2, "ACTOR and PAYLOAD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := readPayload(e, args[1])
			if err != nil {
				return err
			}
			wait := cf.timeout
			if wait <= 0 {
				wait = api.DefaultCallTimeout
			}
			sock, err := cf.socketPath(e)
			if err != nil {
				return err
			}
			c, ctx, done, err := cf.clientWithin(cmd, sock, wait+5*time.Second) // the core times out first and says so
			if err != nil {
				return err
			}
			defer done()
			r, err := c.Call(ctx, args[0], api.CallRequest{
				SendRequest: api.SendRequest{Payload: payload, ID: id},
				TimeoutMS:   wait.Milliseconds(),
			})
			var refused *api.RefusedError
			if errors.As(err, &refused) && asJSON {
				if perr := printJSON(e.stdout, r); perr != nil {
					return perr
				}
				return err // exit 3, with the refusal on stderr too
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, r)
			}
			_, err = e.stdout.Write(r.Reply)
			if err == nil && len(r.Reply) > 0 && r.Reply[len(r.Reply)-1] != '\n' && isTerminal(e.stdout) {
				fmt.Fprintln(e.stdout)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "idempotency id, at most 256 bytes: a retry with the same id returns the stored reply")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reply (base64, and as text when UTF-8), the call's id and any refusal as JSON")
	return cmd
}
