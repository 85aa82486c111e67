package cgroup

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hierarchy returns the machine's hierarchy of version v, or skips.
func hierarchy(t *testing.T, v Version) *Hierarchy {
	t.Helper()
	h, err := Detect(v)
	if err != nil {
		t.Skipf("no usable cgroup hierarchy of this version here: %v", err)
	}
	if v != Auto && h.Version() != v {
		t.Skipf("asked for cgroup version %d, the machine offers %s", v, h)
	}
	return h
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// escapee starts, inside g, a shell that starts a grandchild in a session
// of its own which ignores SIGTERM, prints its pid and exits: the tree
// that escapes a process group kill and is re-parented away.
func escapee(t *testing.T, g *Group) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `setsid /bin/sh -c 'trap "" TERM; exec sleep 1000' </dev/null >/dev/null 2>&1 & echo $!`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("escapee said %q", line)
	}
	return pid
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // generous: a SIGKILL is seen at once
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKillReachesEscapedDescendants: a grandchild that left the process
// group and session is still in the cgroup, and Kill plus Remove end it
// and remove every folder, on each cgroup version the machine has (a
// hybrid machine has both).
func TestKillReachesEscapedDescendants(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := hierarchy(t, v)
			g, missing, err := h.New(Resources{Pids: 64})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: group %s, limits not applied: %v", h, g.Dir(), missing)
			gpid := escapee(t, g)
			procs, err := g.Procs()
			if err != nil || len(procs) != 1 || procs[0] != gpid {
				t.Fatalf("group holds %v (%v), want the grandchild %d", procs, err, gpid)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := g.Kill(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			waitGone(t, gpid)
			for _, d := range g.dirs {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Fatalf("%s not removed: %v", d, err)
				}
			}
		})
	}
}

// TestSweepRemovesGroupsOfDeadHosts: a group named after a pid that is no
// longer alive (a host killed with kill -9), or alive but started at
// another time (reused), is killed and removed by the next host's Sweep; a
// live host's group is left alone.
func TestSweepRemovesGroupsOfDeadHosts(t *testing.T) {
	h := hierarchy(t, Auto)
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	g, _, err := h.New(Resources{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer func() { _ = g.Remove(ctx) }()
	gpid := escapee(t, g)
	// Rename it as if a dead host had made it.
	stale := fmt.Sprintf("graft-%d-%d-0000beef", dead.Process.Pid, startTime(os.Getpid()))
	renamed := &Group{version: g.version, name: stale, ctrl: map[string]string{}}
	for i, d := range g.dirs {
		nd := g.parents[i] + "/" + stale
		if err := os.Rename(d, nd); err != nil {
			t.Skipf("cannot rename a cgroup here: %v", err)
		}
		renamed.dirs = append(renamed.dirs, nd)
	}
	defer func() { _ = renamed.Remove(ctx) }()
	live, _, err := h.New(Resources{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Remove(ctx) }()

	// A group named after this live process but another start time is a
	// dead host's whose pid was reused.
	reused := fmt.Sprintf("graft-%d-1-0000cafe", os.Getpid())
	for _, p := range g.parents {
		if err := os.Mkdir(p+"/"+reused, 0o755); err != nil {
			t.Fatal(err)
		}
		renamed.dirs = append(renamed.dirs, p+"/"+reused)
	}
	// Other hosts on the machine sweep too, and may get there first: what
	// matters is that the stale group and its process are gone.
	if _, err := h.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range renamed.dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("stale group %s not removed: %v", d, err)
		}
	}
	waitGone(t, gpid)
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Fatalf("the live host's group was removed: %v", err)
	}
}

func TestParseOwnCgroup(t *testing.T) {
	mounts := []byte(`32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`)
	own := []byte("4:memory:/outer/job\n1:cpu:/\n0::/svc\n")
	paths := ownPaths(own)
	var got []string
	for _, m := range parseMounts(mounts) {
		if m.fstype == "cgroup" {
			for _, c := range []string{"cpu", "memory"} {
				if len(m.opts) > 1 && m.opts[1] == c {
					got = append(got, within(m, paths[c]))
				}
			}
		} else {
			got = append(got, within(m, paths[""]))
		}
	}
	want := []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory/job", "/sys/fs/cgroup/unified/svc"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestLimitsAreWrittenAndJoined: a process started in a group with limits
// is in every hierarchy of the group (v1: memory and cpu joined by pid,
// the others by the forking thread), the limit files say what was asked,
// and the host itself is in none of them.
func TestLimitsAreWrittenAndJoined(t *testing.T) {
	h := hierarchy(t, Auto)
	g, missing, err := h.New(Resources{Memory: 64 << 20, Pids: 32, CPUWeight: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer func() { _ = g.Remove(ctx) }()
	if len(missing) > 0 {
		t.Skipf("this machine cannot apply every limit: %v", missing)
	}
	cmd := exec.Command("/bin/sleep", "60")
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	own, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	self, _ := os.ReadFile("/proc/self/cgroup")
	if strings.Contains(string(self), g.name) {
		t.Fatalf("the host is in its module's group: %s", self)
	}
	want := map[string]string{"memory.max": "67108864", "pids.max": "32", "cpu.weight": "50"}
	if h.Version() == V1 {
		want = map[string]string{"memory.limit_in_bytes": "67108864", "pids.max": "32", "cpu.shares": "512"}
	}
	for file, v := range want {
		dir := g.ctrl[strings.SplitN(file, ".", 2)[0]]
		if got := strings.TrimSpace(readString(dir + "/" + file)); got != v {
			t.Errorf("%s/%s = %q, want %q", dir, file, got, v)
		}
	}
	n := strings.Count(string(own), g.name)
	if n != len(g.dirs) {
		t.Fatalf("the child is in %d of the group's %d folders: %s", n, len(g.dirs), own)
	}
}
