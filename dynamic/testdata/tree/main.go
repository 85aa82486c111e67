// Command tree spawns processes and reports on itself, for the tests of
// process containment, environment and limits. Payloads:
//
//	"escape" a grandchild in a session of its own, ignoring SIGTERM, whose
//	         parent exits at once (re-parented during the plugin's life);
//	         replies with its pid
//	"child"  a child in a session of its own, ignoring SIGTERM (re-parented
//	         when the plugin dies); replies with its pid
//	"group"  a child in the plugin's process group; replies with its pid
//	"env"    replies with its environment, one variable a line
//	"hog"    allocates memory without bound
//	anything else: replies with the plugin's pid
package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/graft-host/graft/dynamic/sdk"
)

func spawn(cmd *exec.Cmd) (int, error) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	return cmd.Process.Pid, nil
}

func handle(ctx *sdk.Context, s int, m sdk.Message) (int, error) {
	var pid int
	var err error
	switch string(m.Payload) {
	case "escape":
		var out []byte
		out, err = exec.Command("/bin/sh", "-c", `trap '' TERM; setsid /bin/sleep 3600 </dev/null >/dev/null 2>&1 & echo $!`).Output()
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(out)))
		}
	case "child":
		cmd := exec.Command("/bin/sh", "-c", `trap '' TERM; exec /bin/sleep 3600`)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		pid, err = spawn(cmd)
	case "group":
		pid, err = spawn(exec.Command("/bin/sleep", "3600"))
	case "env":
		ctx.Reply([]byte(strings.Join(os.Environ(), "\n")))
		return s, nil
	case "hog":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	default:
		pid = os.Getpid()
	}
	if err != nil {
		return s, err
	}
	ctx.Reply([]byte(strconv.Itoa(pid)))
	return s + 1, nil
}

func main() {
	sdk.Serve(sdk.Module[int]{Name: "tree", Version: "1", Behaviour: sdk.Funcs[int]{HandleFunc: handle}})
}
