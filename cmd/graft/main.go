// Command graft is the graft core and its control tool: `graft run` runs a
// core in the foreground from a YAML config; every other command drives a
// running core through its control socket (see graft/core/control).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// Exit codes: scripts can tell a failed operation from a misused command.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitRefused = 3 // call: the handler refused the request (a terminal error)
	exitDryRun  = 4 // upgrade --dry-run: some actors did not pass
)

// execute runs the command line args and returns the exit code. Everything
// the commands touch (streams, environment) comes in here, so tests and
// main share one path and nothing lives in package variables.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	root := newRootCmd(&env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "graft: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var re *api.RefusedError
	if errors.As(err, &re) {
		return exitRefused
	}
	var de *dryRunFailedError
	if errors.As(err, &de) {
		return exitDryRun
	}
	return exitError
}

// env is what every command reads and writes besides its flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError is a misused command line (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func newRootCmd(e *env) *cobra.Command {
	cf := &clientFlags{}
	root := &cobra.Command{
		Use:   "graft",
		Short: "graft runs actors whose code can be upgraded while they run",
		Long: `graft is a hot code upgrade host: a core process owns durable mailboxes
and the state of its actors, and each actor's behaviour runs out of process
as a versioned plugin binary that can be upgraded in place.

Run a core with ` + "`graft run --config FILE`" + `. Every other command talks to a
running core through its control socket, found from, in this order:
--config FILE (its control.dir), --socket PATH, $GRAFT_SOCKET,
$GRAFT_CONFIG (a config file), or ./graft.yaml when there is one.`,
		Example: `  graft run --config graft.yaml
  graft status --config graft.yaml
  graft status --watch            # in the folder of graft.yaml
  GRAFT_SOCKET=run/graft.sock graft call greeter hello`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
	})
	root.PersistentFlags().StringVarP(&cf.config, "config", "c", "", "config file (run: required; other commands: find the core's socket from it; default $GRAFT_CONFIG, else ./graft.yaml)")
	root.PersistentFlags().StringVar(&cf.socket, "socket", "", "control socket of the core, when --config is not given (default $GRAFT_SOCKET)")
	root.PersistentFlags().DurationVar(&cf.timeout, "timeout", 0, "bound on the whole command (0: each command's default)")
	root.AddCommand(
		newRunCmd(e, cf),
		newStatusCmd(e, cf),
		newSendCmd(e, cf),
		newCallCmd(e, cf),
		newSpawnCmd(e, cf),
		newActorCmd(e, cf, "stop", "Stop an actor and keep its data; it stays stopped until `graft start`",
			"Stop lets the actor's batch in flight commit, then stops it. Its mailbox, state\nand timers are kept, and messages sent to it keep arriving durably and wait\nfor `graft start`. `graft destroy` removes an actor and its data for good."),
		newActorCmd(e, cf, "start", "Start a stopped actor",
			"Start starts a stopped actor again; it resumes from its committed state and\nprocesses what queued meanwhile."),
		newDestroyCmd(e, cf),
		newTimersCmd(e, cf),
		newDeadLettersCmd(e, cf),
		newStateCmd(e, cf),
		newHistoryCmd(e, cf),
		newUpgradeCmd(e, cf),
		newVersionCmd(e, cf),
		newRollbackCmd(e, cf),
	)
	return root
}
