package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/internal/buildinfo"
)

func newVersionCmd(e *env, cf *clientFlags) *cobra.Command {
	var asJSON, ofCore bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print graft's version, commit and Go version (and, with --core, the running core's)",
		Long: `Version prints this graft binary's version (its module version, or a
pseudo-version for a build from a checkout), the commit it was built from
("+dirty" when the tree had changes) and the Go version, from what the Go
toolchain stamped into the binary. --core asks the running core for its
own: after an update they can differ until the core restarts.`,
		Example: `  graft version
  graft version --core --config graft.yaml --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			self := buildinfo.Read()
			out := struct {
				Client buildinfo.Info `json:"client"`
				Core   *api.CoreInfo  `json:"core,omitempty"`
			}{Client: self}
			if ofCore {
				c, ctx, done, err := cf.client(cmd, e, 10*time.Second)
				if err != nil {
					return err
				}
				defer done()
				info, err := c.Info(ctx)
				if err != nil {
					return err
				}
				out.Core = &info
			}
			if asJSON {
				return printJSON(e.stdout, out)
			}
			fmt.Fprintf(e.stdout, "graft %s\n", self)
			if out.Core != nil {
				core := buildinfo.Info{Version: out.Core.Version, Commit: out.Core.Commit, GoVersion: out.Core.GoVersion}
				fmt.Fprintf(e.stdout, "core  %s (pid %d, %s)\n", core, out.Core.PID, out.Core.Socket)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&ofCore, "core", false, "ask the running core for its version too")
	return cmd
}
