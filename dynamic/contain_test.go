package dynamic_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/dynamic/internal/cgroup"
)

// needCgroup skips the test, saying why, unless the machine offers a
// cgroup hierarchy this process can use with r's limits.
func needCgroup(t *testing.T, r cgroup.Resources) {
	t.Helper()
	h, err := cgroup.Detect(cgroup.Auto)
	if err != nil {
		t.Skipf("no usable cgroup on this machine: %v", err)
	}
	g, missing, err := h.New(r)
	if err != nil {
		t.Skipf("cannot create a cgroup here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, g.Remove(ctx))
	if len(missing) > 0 {
		t.Skipf("this machine cannot apply the limits: %v", missing)
	}
}

// state is a process's state letter from /proc ("" if it is gone) and its
// parent.
func procState(pid int) (string, int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return f[0], ppid
}

// TestEscapedDescendantsDieWithTheirModule: whichever way a plugin's
// descendant escapes its process group (a session of its own with its
// parent gone at once, a session of its own, or none), and ignoring
// SIGTERM, stopping the module ends it, with a cgroup where the machine has
// one and by subreaper adoption where it has none. An adopted descendant is
// reaped too (no zombie is left with the host).
func TestEscapedDescendantsDieWithTheirModule(t *testing.T) {
	for _, mode := range []string{"auto", "subreaper"} {
		for _, how := range []string{"escape", "child", "group"} {
			t.Run(mode+"/"+how, func(t *testing.T) {
				if mode == "auto" {
					needCgroup(t, cgroup.Resources{})
				}
				c := startChild(t, "tree", mode)
				pid, err := strconv.Atoi(c.handle(how))
				require.NoError(t, err)
				require.True(t, alive(pid), "descendant %d runs", pid)
				c.stop()
				// No figure here (G6's second is for a dead host, below): a
				// generous wait for the kill that stopping the module sends.
				waitFor(t, 10*time.Second, fmt.Sprintf("%s descendant %d to die with its module", how, pid), func() bool { return !alive(pid) })
				if st, ppid := procState(pid); st == "Z" && ppid == c.cmd.Process.Pid {
					t.Fatalf("descendant %d left as a zombie of the host", pid)
				}
			})
		}
	}
}

// TestKill9OfHostKillsThePluginTree: after kill -9 of the host, the
// plugin's descendants die within a second as well as the plugin: with a
// cgroup the plugin kills its cgroup, and without one its process group. A
// later host's start removes the cgroup the dead host left.
func TestKill9OfHostKillsThePluginTree(t *testing.T) {
	for _, tc := range []struct{ mode, how string }{
		{"auto", "escape"}, {"auto", "child"}, {"auto", "group"}, {"group", "group"},
	} {
		t.Run(tc.mode+"/"+tc.how, func(t *testing.T) {
			if tc.mode == "auto" {
				needCgroup(t, cgroup.Resources{})
			}
			c := startChild(t, "tree", tc.mode)
			pid, err := strconv.Atoi(c.handle(tc.how))
			require.NoError(t, err)
			groups := cgroupDirs(c.pid)
			c.kill9()
			waitFor(t, time.Second, fmt.Sprintf("plugin %d to die after its host", c.pid), func() bool { return !alive(c.pid) })
			waitFor(t, time.Second, fmt.Sprintf("%s descendant %d to die after its host", tc.how, pid), func() bool { return !alive(pid) })
			if len(groups) == 0 {
				return
			}
			start(t, config(t, "echo")) // sweeps what dead hosts left
			for _, d := range groups {
				_, err := os.Stat(d)
				require.True(t, os.IsNotExist(err), "cgroup %s of the killed host is removed by the next start (%v)", d, err)
			}
		})
	}
}

// cgroupDirs lists the graft module cgroup folders pid is in.
func cgroupDirs(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.Contains(filepath.Base(parts[2]), "graft-") {
			continue
		}
		roots := []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
		if parts[1] != "" {
			roots = nil
			for _, c := range strings.Split(parts[1], ",") {
				roots = append(roots, "/sys/fs/cgroup/"+c)
			}
		}
		for _, r := range roots {
			if d := filepath.Join(r, parts[2]); isDir(d) {
				out = append(out, d)
			}
		}
	}
	return out
}

func isDir(d string) bool {
	st, err := os.Stat(d)
	return err == nil && st.IsDir()
}

// TestMemoryLimitStopsAHogAndSaysSo: a behaviour that allocates without
// bound, with a memory limit, is killed by the kernel at the limit (not by
// the machine's OOM killer at the end of its memory), and the crash says
// so: "killed: over its memory limit of 64 MiB", matching ErrMemoryLimit.
func TestMemoryLimitStopsAHogAndSaysSo(t *testing.T) {
	needCgroup(t, cgroup.Resources{Memory: 64 << 20})
	cfg := config(t, "tree")
	cfg.Resources.Memory = 64 << 20
	m := start(t, cfg)
	_, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")}, Messages: msgs("hog")})
	require.ErrorIs(t, err, dynamic.ErrCrashed)
	require.ErrorIs(t, err, dynamic.ErrMemoryLimit)
	require.Contains(t, err.Error(), "killed: over its memory limit of 64 MiB")
	<-m.Exited()
	ex, ok := m.ExitStatus()
	require.True(t, ok)
	require.Equal(t, "killed: over its memory limit of 64 MiB", ex.String())

	// Without a limit the same module serves, and a module with a limit it
	// stays under is not reported as over it.
	m2 := start(t, cfg)
	res, err := m2.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")}, Messages: msgs("pid")})
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(m2.Pid()), string(res.Results[0].Reply))
}
