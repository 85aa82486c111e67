package upgrade_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// G4 under kill -9: a child core process streams messages to its actors,
// starts an upgrade and is killed at a named step (GRAFT_FAILPOINT). A
// core restarted on the same store finishes the upgrade, every actor ends
// on v2 with its state carried over, the history says what happened, and
// every acknowledged message is applied exactly once, in order.

const (
	envChild   = "GRAFT_UPGRADE_CHILD"
	envPlugins = "GRAFT_UPGRADE_PLUGINS"
	crashKV    = 6
)

func say(format string, args ...any) { os.Stdout.Write([]byte(fmt.Sprintf(format, args...) + "\n")) }

func runChild() {
	pluginDir = os.Getenv(envPlugins)
	dir := os.Getenv(envChild)
	fail := func(err error) {
		say("error %v", err)
		os.Exit(1)
	}
	cfg, names := kvConfig(nil, dir, crashKV)
	mgr, err := upgrade.New(upgrade.Options{Dir: filepath.Join(dir, "store", "modules"), GroupSize: 2, Logger: testLogger(nil)})
	if err != nil {
		fail(err)
	}
	if err := mgr.Prepare(&cfg); err != nil {
		fail(err)
	}
	c, err := core.New(cfg)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	mgr.Attach(ctx, c)
	for _, a := range names {
		go func(a string) {
			for i := 0; ; i++ {
				p := fmt.Sprintf("%s-%d", a, i)
				say("try %s %s", a, p)
				if _, err := c.Send(ctx, a, []byte(p), core.SendOptions{ID: p}); err != nil {
					fail(err)
				}
				say("ok %s %s", a, p)
			}
		}(a)
	}
	say("ready")
	// Let traffic flow on v1, then upgrade from the rebuilt source.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := c.Store().Stats(names[0])
		if st.Acked > 30 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	src, _ := os.ReadFile(bin("kv2"))
	if err := os.WriteFile(filepath.Join(dir, "kv.new"), src, 0o755); err != nil {
		fail(err)
	}
	if err := os.Rename(filepath.Join(dir, "kv.new"), filepath.Join(dir, "kv")); err != nil {
		fail(err)
	}
	_, err = mgr.Upgrade(ctx, "kv", "")
	say("upgraded %v", err) // only reached when the failpoint did not fire
	select {}
}

func TestKill9AtEachUpgradeStep(t *testing.T) {
	for _, step := range []string{"journaled", "paused", "migrated", "committed", "done"} {
		t.Run(step, func(t *testing.T) { killAtStep(t, step) })
	}
}

func killAtStep(t *testing.T, step string) {
	dir := t.TempDir()
	install(t, "kv1", filepath.Join(dir, "kv"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envPlugins+"="+pluginDir, "GRAFT_FAILPOINT="+step)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	err = cmd.Wait()
	require.Error(t, err, "the failpoint killed the core")
	assert.Contains(t, err.Error(), "killed")

	type send struct{ actor, id string }
	var oks, tries []send
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "ok":
			oks = append(oks, send{f[1], f[2]})
		case "try":
			tries = append(tries, send{f[1], f[2]})
		case "error", "upgraded":
			t.Fatalf("core child: %s", l)
		}
	}
	require.NotEmpty(t, oks)

	s := boot(t, dir, crashKV, upgrade.Options{GroupSize: 2})
	waitFor(t, 30*time.Second, "the upgrade to be finished", func() bool {
		h := s.history(t)
		return len(h) > 0 && strings.HasPrefix(h[len(h)-1].Outcome, "completed")
	})
	hist := s.history(t)
	t.Logf("history after a kill at %q: %+v", step, hist[len(hist)-1].Outcome)
	if step != "done" {
		assert.Equal(t, "completed after a core restart", hist[len(hist)-1].Outcome)
	}
	for _, tr := range tries {
		_, err := s.core.Send(ctxFor(t, 10*time.Second), tr.actor, []byte(tr.id), core.SendOptions{ID: tr.id})
		require.NoError(t, err)
	}
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return s.drained(s.actors...) })
	applied := map[string]int{}
	for _, a := range s.actors {
		st := s.state(t, a)
		assert.EqualValues(t, 2, st.Schema, "actor %s on v2", a)
		assert.Equal(t, "2.0.0", st.Module)
		assert.Equal(t, len(st.Applied), st.Count, "actor %s: state carried over", a)
		last := -1
		for _, p := range st.Applied {
			applied[a+" "+p]++
			var n int
			_, err := fmt.Sscanf(strings.TrimPrefix(p, a+"-"), "%d", &n)
			require.NoError(t, err)
			require.Greater(t, n, last, "actor %s: applied out of order", a)
			last = n
		}
	}
	for k, n := range applied {
		require.Equal(t, 1, n, "%s applied %d times", k, n)
	}
	for _, o := range oks {
		require.Equal(t, 1, applied[o.actor+" "+o.id], "acknowledged %s lost", o.id)
	}
	cur, _ := s.mgr.Current("kv")
	assert.Equal(t, "2.0.0", cur.Code)
}

var _ = mailbox.OutcomeApplied
