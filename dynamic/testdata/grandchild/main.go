// Command grandchild spawns a long-lived child that holds its stderr (the
// case that makes go-plugin's Kill wait 12 s), then serves echo. Payload
// "pid" is answered with the grandchild's pid.
package main

import (
	"os"
	"os/exec"
	"strconv"

	"github.com/graft-host/graft/dynamic/sdk"
)

func main() {
	cmd := exec.Command("/bin/sleep", "3600")
	cmd.Stderr = os.Stderr // the real fd 2, before go-plugin replaces os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	gpid := []byte(strconv.Itoa(cmd.Process.Pid))
	sdk.Serve(sdk.Module[int]{Name: "grandchild", Version: "1",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(ctx *sdk.Context, s int, m sdk.Message) (int, error) {
			ctx.Reply(gpid)
			return s, nil
		}}})
}
