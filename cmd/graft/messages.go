package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

// sendFlags are `graft send`'s own flags.
type sendFlags struct {
	id     string
	asJSON bool
	after  time.Duration
	at     string
}

func newSendCmd(e *env, cf *clientFlags) *cobra.Command {
	sf := &sendFlags{}
	cmd := &cobra.Command{
		Use:   "send ACTOR PAYLOAD [--id ID] [--after D | --at TIME]",
		Short: "Send a message to an actor (returns once it is durable), now or later",
		Long: `Send enqueues PAYLOAD in ACTOR's mailbox and returns once the message is
durable: it survives a crash of the core from then on. PAYLOAD - reads the
payload from stdin. With --id the send is idempotent: a retry with the same
id enqueues nothing and reports the original sequence number.

--after D (a duration: 30s, 5m, 2h) or --at TIME (RFC 3339, e.g.
2030-01-02T15:04:05Z) sets a durable timer instead, and prints its id: the
message is delivered once, as an ordinary message carrying the timer id, when
it is due, even across a crash or restart of the core (a time already past
is due at once). ` + "`graft timers ACTOR`" + ` lists the pending ones. With --id a
retry sets no second timer while the first is pending, and prints the same
timer id.`,
		Example: `  graft send greeter hello --config graft.yaml
  graft send greeter hello --id order-42    # safe to retry
  echo '{"n": 1}' | graft send counter -
  graft send order-7 expire --after 30s     # delivered in 30 seconds
  graft send order-7 expire --after 30s --id expire-7   # safe to retry
  graft send order-7 expire --at 2030-01-02T15:04:05Z`,
		Args: exactArgs(2, "ACTOR and PAYLOAD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := sf.request(cmd)
			if err != nil {
				return err
			}
			if req.Payload, err = readPayload(e, args[1]); err != nil {
				return err
			}
			c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := c.Send(ctx, args[0], req)
			if err != nil {
				return err
			}
			if sf.asJSON {
				return printJSON(e.stdout, r)
			}
			if r.TimerID != "" {
				_, err := fmt.Fprintf(e.stdout, "scheduled for %s as timer %s, due %s (%s)\n", r.Actor, r.TimerID,
					r.Due.Local().Format(time.RFC3339), relative(time.Until(r.Due)))
				return err
			}
			note := ""
			if r.Duplicate {
				note = fmt.Sprintf(" (duplicate of an earlier send with id %q: nothing new enqueued; %s)", sf.id, r.Outcome)
			}
			fmt.Fprintf(e.stdout, "sent to %s as message %d%s\n", r.Actor, r.Seq, note)
			return nil
		},
	}
	cmd.Flags().StringVar(&sf.id, "id", "", "idempotency id, at most 256 bytes: a retry with the same id is not enqueued (or, with --after or --at, scheduled) again")
	cmd.Flags().BoolVar(&sf.asJSON, "json", false, "print the receipt as JSON")
	cmd.Flags().DurationVar(&sf.after, "after", 0, "deliver the message after this delay (a durable timer), e.g. 30s")
	cmd.Flags().StringVar(&sf.at, "at", "", "deliver the message at this time (RFC 3339; a durable timer)")
	return cmd
}

// request is the send that the flags ask for, or a usage error for flags
// that do not go together.
func (sf *sendFlags) request(cmd *cobra.Command) (api.SendRequest, error) {
	f := cmd.Flags()
	req := api.SendRequest{ID: sf.id}
	switch {
	case f.Changed("after") && f.Changed("at"):
		return req, &usageError{errors.New("--after and --at do not go together: give a delay, or a time")}
	case f.Changed("after") && sf.after < 0:
		return req, &usageError{fmt.Errorf("--after %s is negative: give a delay of 0s or more (or --at TIME)", sf.after)}
	case f.Changed("after"):
		secs := sf.after.Seconds()
		req.AfterSeconds = &secs
	case f.Changed("at"):
		at, err := time.Parse(time.RFC3339Nano, sf.at)
		if err != nil {
			return req, &usageError{fmt.Errorf("--at %q is not an RFC 3339 time: give one like 2030-01-02T15:04:05Z or 2030-01-02T15:04:05+01:00", sf.at)}
		}
		req.At = at
	}
	return req, nil
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
			c, ctx, done, err := cf.clientWithin(cmd, e, sock, wait+5*time.Second) // the core times out first and says so
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
