package core_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
)

// The core crash test re-executes this test binary as a core process (with
// the recorder behaviour and producers sending to it), kills it with
// SIGKILL under load, restarts a core on the same store and checks that
// every acknowledged send was applied exactly once, in per-sender order.

const (
	envChild      = "GRAFT_CORE_CHILD"
	envGraceful   = "GRAFT_CORE_GRACEFUL"
	envPlugins    = "GRAFT_CORE_PLUGINS"
	crashSenders  = 4
	crashReceiver = 3
)

func crashActors() []string {
	var out []string
	for i := 0; i < crashReceiver; i++ {
		out = append(out, fmt.Sprintf("r%d", i))
	}
	return out
}

func say(format string, args ...any) {
	os.Stdout.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
}

// runCoreChild is the core process of the crash test.
func runCoreChild() {
	if os.Getenv(envEffects) != "" {
		runEffectsChild() // effects_crash_test.go
		return
	}
	pluginDir = os.Getenv(envPlugins)
	c, err := core.New(recorderConfig(nil, os.Getenv(envChild), crashActors()...))
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	graceful := os.Getenv(envGraceful) != ""
	ctx := context.Background()
	if graceful {
		done := make(chan error, 1)
		go func() { done <- c.RunUntilSignal(ctx, 10*time.Second) }()
		go func() {
			err := <-done
			say("exited %v", err)
			if err != nil {
				os.Exit(1)
			}
			os.Exit(0)
		}()
	} else if err := c.Start(ctx); err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	say("ready")
	for k := 0; k < crashSenders; k++ {
		go func(k int) {
			for n := 0; ; n++ {
				actor := crashActors()[(k+n)%crashReceiver]
				id := fmt.Sprintf("s%d-%d", k, n)
				say("try %s %s", actor, id)
				if _, err := c.Send(ctx, actor, []byte(id), core.SendOptions{ID: id, Sender: fmt.Sprintf("s%d", k)}); err != nil {
					if graceful {
						return // the store closed under us: shutting down
					}
					say("error %v", err)
					return
				}
				say("ok %s %s", actor, id)
			}
		}(k)
	}
	select {}
}

func TestKill9CoreUnderLoad(t *testing.T) {
	runs := 3
	if testing.Short() {
		runs = 1
	}
	for run := 0; run < runs; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) { stopCoreUnderLoad(t, 100+run*150, syscall.SIGKILL) })
	}
}

// SIGTERM: the core stops taking batches, lets those in flight commit,
// stops its modules and closes the store, then exits 0; a restart resumes
// from the committed state.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	stopCoreUnderLoad(t, 200, syscall.SIGTERM)
}

func stopCoreUnderLoad(t *testing.T, afterOKs int, sig syscall.Signal) {
	dir := t.TempDir()
	env := []string{envChild + "=" + dir, envPlugins + "=" + pluginDir}
	if sig != syscall.SIGKILL {
		env = append(env, envGraceful+"=1")
	}
	child := startCoreChild(t, env, afterOKs, 60*time.Second, "sends")
	require.NoError(t, child.cmd.Process.Signal(sig))
	waitErr := child.cmd.Wait()
	lines := child.output()
	if sig == syscall.SIGKILL {
		// G6: the dead core's plugin processes follow it within a second.
		waitFor(t, time.Second, "the killed core's plugins to exit", func() bool { return len(testbin.Running(bin("recorder"))) == 0 })
	} else {
		require.NoError(t, waitErr, "a graceful shutdown exits 0")
		assert.Contains(t, lines, "exited <nil>", "RunUntilSignal returned without error")
		assert.Empty(t, testbin.Running(bin("recorder")), "the core stopped its plugins before exiting")
	}

	type send struct{ actor, id string }
	var oks, tries []send
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "ok":
			oks = append(oks, send{f[1], f[2]})
		case "try":
			tries = append(tries, send{f[1], f[2]})
		case "error":
			t.Fatalf("core child failed: %s", l)
		case "exited":
		}
	}

	c := startCore(t, recorderConfig(t, dir, crashActors()...))
	ctx := ctxFor(t, 60*time.Second)
	// Retry every send the child tried, with its id: nothing is applied twice.
	for _, s := range tries {
		_, err := c.Send(ctx, s.actor, []byte(s.id), core.SendOptions{ID: s.id, Sender: strings.Split(s.id, "-")[0]})
		require.NoError(t, err)
	}
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return drained(c, crashActors()...) })

	seen := map[string]int{}
	for _, actor := range crashActors() {
		last := map[string]int{}
		for _, id := range applied(t, c, actor) {
			seen[actor+" "+id]++
			var k, n int
			_, err := fmt.Sscanf(id, "s%d-%d", &k, &n)
			require.NoError(t, err)
			if prev, ok := last[fmt.Sprint(k)]; ok {
				require.Greater(t, n, prev, "actor %s: sender s%d applied out of order", actor, k)
			}
			last[fmt.Sprint(k)] = n
		}
	}
	for key, count := range seen {
		require.Equal(t, 1, count, "%s applied %d times", key, count)
	}
	for _, s := range oks {
		assert.Equal(t, 1, seen[s.actor+" "+s.id], "acknowledged send %s to %s lost", s.id, s.actor)
	}
	for _, s := range tries {
		assert.Equal(t, 1, seen[s.actor+" "+s.id], "retried send %s to %s not applied exactly once", s.id, s.actor)
	}
}

// coreChild is this test binary re-run as a core child (runCoreChild),
// reporting on stdout a line per event ("try ...", "ok ...").
type coreChild struct {
	cmd   *exec.Cmd
	lines []string
	eof   chan struct{}
}

// startCoreChild starts a core child with env added to this process's, and
// returns once it has printed afterOKs "ok" lines (failing the test if it
// exits first or takes longer than within; what names the acknowledged
// things in that message).
func startCoreChild(t *testing.T, env []string, afterOKs int, within time.Duration, what string) *coreChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &coreChild{cmd: cmd, eof: make(chan struct{})}
	loaded := make(chan struct{})
	go func() {
		defer close(c.eof)
		sc := bufio.NewScanner(stdout)
		oks := 0
		for sc.Scan() {
			c.lines = append(c.lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "ok ") {
				if oks++; oks == afterOKs {
					close(loaded)
				}
			}
		}
	}()
	select {
	case <-loaded:
	case <-c.eof:
		t.Fatalf("core child exited early: %q", c.lines)
	case <-time.After(within):
		t.Fatalf("core child did not acknowledge enough %s within %s", what, within)
	}
	return c
}

// output waits for the child's stdout to end (after it exited) and
// returns every line it printed.
func (c *coreChild) output() []string {
	<-c.eof
	return c.lines
}
