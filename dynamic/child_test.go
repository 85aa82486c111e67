package dynamic_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic"
)

// hostChild is a host process driven by its parent test over stdin, for
// tests that kill the host or change process-wide settings (a child
// subreaper) the test process must not have. mode is "auto" (cgroups where
// there are some), "group" (process group and subreaper adoption only) or
// "subreaper" (group, and the process becomes a child subreaper first). It
// prints "PID <plugin pid>", then answers "handle PAYLOAD" with "REPLY
// <reply>" and "stop" with "STOPPED <error>", and exits at EOF.
func hostChild(path, mode string) {
	cfg := dynamic.Config{Path: path, Logger: discard(), SocketDir: os.TempDir()}
	switch mode {
	case "subreaper":
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fallthrough
	case "group":
		cfg.Containment = dynamic.ContainGroup
	}
	ctx := context.Background()
	mod, err := dynamic.Start(ctx, cfg)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", mod.Pid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "handle":
			res, err := mod.Handle(ctx, dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")},
				Messages: []dynamic.Message{{Seq: 1, Payload: []byte(arg), Attempt: 1}}})
			switch {
			case err != nil:
				fmt.Println("ERR", err)
			case res.Results[0].Err != "":
				fmt.Println("ERR", res.Results[0].Err)
			default:
				fmt.Println("REPLY", string(res.Results[0].Reply))
			}
		case "stop":
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			fmt.Println("STOPPED", mod.Stop(sctx))
			cancel()
		}
	}
	os.Exit(0)
}

// child is a running hostChild.
type child struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	pid int // the plugin's
}

// startChild starts a hostChild running plugin name in mode.
func startChild(t testing.TB, name, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+bin(name), childModeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := c.line()
	if _, err := fmt.Sscanf(line, "PID %d", &c.pid); err != nil {
		t.Fatalf("host child said %q", line)
	}
	return c
}

func (c *child) line() string {
	c.t.Helper()
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.t.Fatalf("host child output: %v", err)
	}
	return strings.TrimSpace(line)
}

// handle has the child's module handle payload and returns the reply.
func (c *child) handle(payload string) string {
	c.t.Helper()
	fmt.Fprintln(c.in, "handle", payload)
	line := c.line()
	reply, ok := strings.CutPrefix(line, "REPLY ")
	if !ok {
		c.t.Fatalf("handle %q: %s", payload, line)
	}
	return reply
}

// stop has the child stop its module, and fails the test on an error.
func (c *child) stop() {
	c.t.Helper()
	fmt.Fprintln(c.in, "stop")
	if line := c.line(); line != "STOPPED <nil>" {
		c.t.Fatalf("stop: %s", line)
	}
}

// kill9 kills the child host with SIGKILL and reaps it.
func (c *child) kill9() {
	c.t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	_ = c.cmd.Wait()
}
