package upgrade_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// G4 under kill -9: a child core process (testdata/crashcore, built with
// the graftfailpoints tag) streams messages to its actors, starts an
// upgrade and is killed at a named failpoint (GRAFT_FAILPOINT). A core
// restarted on the same store finishes the upgrade, every actor ends on v2
// with its state carried over, the history says what happened, and every
// acknowledged message is applied exactly once, in order.

const crashKV = 6

func TestKill9AtEachUpgradeStep(t *testing.T) {
	child := buildCrashCore(t)
	for _, fp := range upgrade.Failpoints() {
		t.Run(string(fp), func(t *testing.T) { killAtStep(t, child, fp, "") })
	}
}

// TestKill9DuringACanaryBake: a core killed once its canary group moved
// and its bake began restarts in the same phase with the same group (the
// canary actors on v2, the others on v1), and a promote then finishes the
// upgrade with every acknowledged message applied exactly once.
func TestKill9DuringACanaryBake(t *testing.T) {
	killAtStep(t, buildCrashCore(t), upgrade.FailpointBaking, "50%")
}

// buildCrashCore builds testdata/crashcore into the plugins' folder with
// failpoints compiled in, and with the race detector when this test binary
// has it, so the plain `go test ./...` runs the crash tests against a core
// that can be killed at each failpoint while the release graft cannot.
func buildCrashCore(t *testing.T) string {
	out := filepath.Join(pluginDir, "crashcore")
	args := []string{"build", "-tags", "graftfailpoints", "-o", out}
	if raceEnabled() {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./testdata/crashcore")...)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s: %s", strings.Join(cmd.Args[1:], " "), msg)
	return out
}

// raceEnabled says whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func killAtStep(t *testing.T, child string, step upgrade.Failpoint, canary string) {
	dir := t.TempDir()
	install(t, "kv1", filepath.Join(dir, "kv"))
	cmd := exec.Command(child, dir, bin("kv2"), strconv.Itoa(crashKV))
	cmd.Env = append(os.Environ(), "GRAFT_FAILPOINT="+string(step), "GRAFT_CRASH_CANARY="+canary)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
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

	s := bootSystem(t, dir, crashKV, upgrade.Options{GroupSize: 2}, nil, canary == "")
	if canary != "" {
		resumedBake(t, s)
	}
	waitFor(t, 30*time.Second, "the upgrade to be finished", func() bool {
		h := s.history(t)
		return len(h) > 0 && strings.HasPrefix(h[len(h)-1].Outcome, string(upgrade.OutcomeCompleted))
	})
	hist := s.history(t)
	t.Logf("history after a kill at %q: %+v", step, hist[len(hist)-1].Outcome)
	if step != upgrade.FailpointDone {
		assert.Equal(t, string(upgrade.OutcomeCompletedAfterRestart), hist[len(hist)-1].Outcome)
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

// resumedBake checks that a restarted core bakes its canary again with
// the group the killed one chose, its actors on v2 and the others on v1,
// then promotes it.
func resumedBake(t *testing.T, s *system) {
	var op upgrade.Op
	waitFor(t, 30*time.Second, "the canary to bake again", func() bool {
		var ok bool
		op, ok = s.mgr.Running("kv")
		return ok && op.Canary != nil && op.Canary.Phase == upgrade.PhaseBaking
	})
	require.Len(t, op.Canary.Group, crashKV/2)
	for _, a := range s.actors {
		want := uint32(1)
		if slices.Contains(op.Canary.Group, a) {
			want = 2
		}
		assert.Equal(t, want, s.state(t, a).Schema, "actor %s", a)
	}
	require.NoError(t, s.mgr.Decide("kv", upgrade.DecisionPromote))
}
