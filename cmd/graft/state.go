package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/core/control/api"
)

// maxStateFile bounds what `graft state --set` reads: the core refuses a
// state over its own limit (limits.max_state_size, at most 1 GiB) with a
// clear error, so this only keeps a wrong file (/dev/zero) from filling
// memory.
const maxStateFile = 1 << 30

// repairWithin is a repair's default --timeout: it waits for the actor's
// batch in flight, which its behaviour's call_timeout (default 30s) bounds.
const repairWithin = time.Minute

// confirmWithin bounds how long a repair waits for its operator's answer.
const confirmWithin = 5 * time.Minute

// stateFlags are `graft state`'s own flags.
type stateFlags struct {
	set        string
	schema     uint32
	reset, yes bool
	asJSON     bool
	raw        bool
}

func newStateCmd(e *env, cf *clientFlags) *cobra.Command {
	sf := &stateFlags{}
	cmd := &cobra.Command{
		Use:   "state ACTOR [--set FILE|- [--schema N] | --reset] [--yes]",
		Short: "Show an actor's committed state, or repair it: replace it or reset it",
		Long: `State shows ACTOR's committed state: the module version that wrote it, its
schema, its size and its bytes (as text when they are UTF-8 or JSON, else
base64; --raw prints the bytes alone, for editing and --set).

A state its handler cannot use (every message fails on it) can be repaired:
--set FILE replaces it with the file's bytes (- reads stdin), committed at
--schema N (default: the schema the actor's module reads) and the module's
version; --reset clears it, so that the actor's next message runs Init as
for a new actor. The actor is paused between two commits meanwhile (its
batch in flight commits first; messages keep arriving and wait), then
resumes from the new state. Its mailbox, replies and dead letters are kept.
Every repair is recorded in ` + "`graft history`" + ` (kind "repair").

A repair asks for confirmation on the terminal; --yes skips the question,
and is required when stdin is not a terminal (scripts, --set -).`,
		Example: `  graft state counter --config graft.yaml
  graft state counter --raw > state.json     # edit it, then:
  graft state counter --set state.json
  echo '{"n": 0}' | graft state counter --set - --schema 1 --yes
  graft state counter --reset --yes`,
		Args: exactArgs(1, "ACTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(cmd); err != nil {
				return err
			}
			switch {
			case cmd.Flags().Changed("set"):
				return setState(cmd, e, cf, sf, args[0])
			case sf.reset:
				return resetState(cmd, e, cf, sf, args[0])
			}
			return showState(cmd, e, cf, sf, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.set, "set", "", "replace the state with this file's bytes (- reads stdin)")
	f.Uint32Var(&sf.schema, "schema", 0, "with --set: the schema version of the new state (default: the schema the actor's module reads)")
	f.BoolVar(&sf.reset, "reset", false, "clear the state: the actor's next message runs Init")
	f.BoolVar(&sf.yes, "yes", false, "repair without asking for confirmation")
	f.BoolVar(&sf.asJSON, "json", false, "print JSON")
	f.BoolVar(&sf.raw, "raw", false, "print only the state's bytes")
	return cmd
}

// check refuses flag combinations that mean nothing.
func (sf *stateFlags) check(cmd *cobra.Command) error {
	f := cmd.Flags()
	repair := f.Changed("set") || sf.reset
	switch {
	case f.Changed("set") && sf.reset:
		return &usageError{errors.New("--set and --reset do not go together: replace the state, or reset it")}
	case sf.raw && sf.asJSON:
		return &usageError{errors.New("--raw and --json do not go together: the bytes alone, or JSON")}
	case f.Changed("set") && sf.set == "":
		return &usageError{errors.New("--set needs a file (or - for stdin) holding the new state")}
	case f.Changed("schema") && !f.Changed("set"):
		return &usageError{errors.New("--schema goes with --set: it is the schema of the new state")}
	case sf.raw && repair:
		return &usageError{errors.New("--raw shows a state; it does not go with --set or --reset")}
	case f.Changed("yes") && !repair:
		return &usageError{errors.New("--yes confirms a repair: it goes with --set or --reset")}
	}
	return nil
}

func showState(cmd *cobra.Command, e *env, cf *clientFlags, sf *stateFlags, actor string) error {
	c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
	if err != nil {
		return err
	}
	defer done()
	st, err := c.State(ctx, actor)
	if err != nil {
		return err
	}
	switch {
	case sf.asJSON:
		return printJSON(e.stdout, st)
	case sf.raw:
		_, err := e.stdout.Write(st.Data)
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "actor:\t%s\nbehaviour:\t%s\nmodule:\t%s\nschema:\t%d\nsize:\t%d bytes\n", st.Actor, st.Behaviour, dash(st.Module), st.Schema, st.Size)
	if st.Empty {
		fmt.Fprintf(tw, "state:\tnone (the actor's next message runs Init)\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "encoding:\t%s\n", st.Encoding)
	if err := tw.Flush(); err != nil {
		return err
	}
	body := st.Text
	if st.Encoding == "binary" {
		body = base64.StdEncoding.EncodeToString(st.Data)
	}
	_, err = fmt.Fprintln(e.stdout, strings.TrimRight(body, "\n"))
	return err
}

func setState(cmd *cobra.Command, e *env, cf *clientFlags, sf *stateFlags, actor string) error {
	data, err := readStateFile(e, sf.set)
	if err != nil {
		return err
	}
	req := api.StateRequest{Data: data}
	newSchema := "the schema its module reads"
	if cmd.Flags().Changed("schema") {
		req.Schema = &sf.schema
		newSchema = fmt.Sprintf("schema %d", sf.schema)
	}
	what := func(cur api.StateResponse) string {
		return fmt.Sprintf("Replace the state of actor %s (%s): %s\n  by %d bytes from %s, at %s.",
			actor, cur.Behaviour, describeState(cur.Module, cur.Schema, cur.Size, cur.Empty), len(data), sf.set, newSchema)
	}
	if err := confirmRepair(cmd, e, cf, sf, actor, "--set", what); err != nil {
		return err
	}
	c, ctx, done, err := cf.client(cmd, e, repairWithin)
	if err != nil {
		return err
	}
	defer done()
	r, err := c.SetState(ctx, actor, req)
	if err != nil {
		return err
	}
	return reportRepair(e, sf, "replaced", r)
}

func resetState(cmd *cobra.Command, e *env, cf *clientFlags, sf *stateFlags, actor string) error {
	what := func(cur api.StateResponse) string {
		return fmt.Sprintf("Reset the state of actor %s (%s): %s\n  is cleared, and its next message runs Init.",
			actor, cur.Behaviour, describeState(cur.Module, cur.Schema, cur.Size, cur.Empty))
	}
	if err := confirmRepair(cmd, e, cf, sf, actor, "--reset", what); err != nil {
		return err
	}
	c, ctx, done, err := cf.client(cmd, e, repairWithin)
	if err != nil {
		return err
	}
	defer done()
	r, err := c.ResetState(ctx, actor)
	if err != nil {
		return err
	}
	return reportRepair(e, sf, "reset", r)
}

// reportRepair prints what a repair did.
func reportRepair(e *env, sf *stateFlags, past string, r api.RepairResponse) error {
	if sf.asJSON {
		return printJSON(e.stdout, r)
	}
	next := describeState(r.New.Module, r.New.Schema, r.New.Size, r.New.Empty)
	if r.New.Empty {
		next += "; its next message runs Init"
	}
	_, err := fmt.Fprintf(e.stdout, "%s the state of %s: %s -> %s (history record %d)\n",
		past, r.Actor, describeState(r.Old.Module, r.Old.Schema, r.Old.Size, r.Old.Empty), next, r.Record.ID)
	return err
}

// describeState is a state in one phrase.
func describeState(module string, schema uint32, size int, empty bool) string {
	if empty {
		return "no state"
	}
	s := fmt.Sprintf("schema %d, %d bytes", schema, size)
	if module != "" {
		s += ", written by module " + module
	}
	return s
}

// confirmRepair asks the operator on the terminal whether to go ahead with a
// repair that what describes (from the actor's current state), unless
// --yes. Without a terminal to ask on it refuses, naming --yes.
func confirmRepair(cmd *cobra.Command, e *env, cf *clientFlags, sf *stateFlags, actor, flag string, what func(api.StateResponse) string) error {
	if sf.yes {
		return nil
	}
	if flag == "--set" && sf.set == "-" {
		return &usageError{fmt.Errorf("graft state %s --set - reads the new state from stdin, so it cannot ask for confirmation there: add --yes to go ahead", actor)}
	}
	if !stdinIsTerminal(e.stdin) {
		return &usageError{fmt.Errorf("graft state %s %s changes the actor's state and asks for confirmation, but stdin is not a terminal: add --yes to go ahead", actor, flag)}
	}
	c, ctx, done, err := cf.client(cmd, e, 30*time.Second)
	if err != nil {
		return err
	}
	cur, err := c.State(ctx, actor)
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s\nThe actor is paused meanwhile and the repair is recorded in the history.\nGo ahead? [y/N] ", what(cur))
	answer, err := readAnswer(cmd.Context(), e.stdin, confirmWithin)
	if err != nil {
		return fmt.Errorf("no answer, nothing was changed: %w", err)
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return fmt.Errorf("not confirmed (answer %q): the state of actor %s is unchanged", strings.TrimSpace(answer), actor)
	}
	return nil
}

// readAnswer reads one line from r, within d or until ctx ends.
func readAnswer(ctx context.Context, r io.Reader, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		if errors.Is(err, io.EOF) && s != "" {
			err = nil
		}
		got <- line{s, err}
	}()
	select {
	case l := <-got:
		return l.s, l.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for an answer: %w", ctx.Err())
	}
}

// stdinIsTerminal says whether r is a terminal an operator can answer on.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readStateFile reads the new state from path, or stdin for "-".
func readStateFile(e *env, path string) ([]byte, error) {
	r, name := e.stdin, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read the new state: %w", err)
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the new state from %s: %w", name, err)
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("read the new state from %s: it is over 1 GiB, more than any state graft keeps: is it the right file?", name)
	}
	return data, nil
}
