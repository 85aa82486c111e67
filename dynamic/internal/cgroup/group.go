package cgroup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Group is one module's cgroup: in v2 one folder, in v1 one folder per
// hierarchy used (membership first: freezer when there is one).
type Group struct {
	version Version
	name    string
	dirs    []string          // the group's folders
	parents []string          // the host's own folders, same order
	ctrl    map[string]string // controller -> folder holding its files
	res     Resources
}

// pollEvery is how often Remove looks whether the group has emptied.
const pollEvery = 5 * time.Millisecond

// New creates a group for one module under the host's own cgroup and
// applies r. Limits the machine cannot apply (no such controller) are
// returned as missing, in words; the group works without them.
func (h *Hierarchy) New(r Resources) (g *Group, missing []string, err error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("graft-%d-%d-%x", os.Getpid(), startTime(os.Getpid()), rnd)
	g = &Group{version: h.version, name: name, ctrl: map[string]string{}, res: r}
	if h.version == V2 {
		var enabled []string
		enabled, missing = enableV2(h.v2, r)
		dir := filepath.Join(h.v2, g.name)
		if err := os.Mkdir(dir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("cgroups: create %s: %w", dir, err)
		}
		g.dirs, g.parents = []string{dir}, []string{h.v2}
		for _, c := range enabled {
			g.ctrl[c] = dir
		}
	} else {
		for _, c := range v1Controllers {
			parent, ok := h.v1[c]
			if !ok || (c == "memory" && r.Memory == 0) || (c == "cpu" && r.CPUWeight == 0) {
				continue
			}
			dir := filepath.Join(parent, g.name)
			if err := os.Mkdir(dir, 0o750); err != nil {
				_ = g.rmdirs()
				return nil, nil, fmt.Errorf("cgroups: create %s: %w", dir, err)
			}
			g.dirs, g.parents, g.ctrl[c] = append(g.dirs, dir), append(g.parents, parent), dir
		}
		missing = g.missingV1(r)
	}
	if err := g.apply(r); err != nil {
		_ = g.rmdirs()
		return nil, nil, err
	}
	return g, missing, nil
}

func (g *Group) missingV1(r Resources) []string {
	var out []string
	for _, l := range []struct {
		want bool
		c    string
	}{{r.Memory > 0, "memory"}, {r.Pids > 0, "pids"}, {r.CPUWeight > 0, "cpu"}} {
		if _, ok := g.ctrl[l.c]; l.want && !ok {
			out = append(out, "no "+l.c+" controller is mounted")
		}
	}
	return out
}

// enableV2 makes the controllers r needs available to the host's child
// groups, and returns those enabled and, in words, those it cannot enable.
// cgroup v2 allows controllers only below a cgroup without processes of
// its own, so a host alone in its cgroup (a systemd unit with
// Delegate=yes) first moves itself into a leaf, as systemd's delegation
// rules advise.
func enableV2(base string, r Resources) (enabled, missing []string) {
	var want []string
	for _, l := range []struct {
		on bool
		c  string
	}{{r.Memory > 0, "memory"}, {r.Pids > 0, "pids"}, {r.CPUWeight > 0, "cpu"}} {
		if l.on {
			want = append(want, l.c)
		}
	}
	have := strings.Fields(readString(filepath.Join(base, "cgroup.subtree_control")))
	avail := strings.Fields(readString(filepath.Join(base, "cgroup.controllers")))
	var add []string
	for _, c := range want {
		switch {
		case slices.Contains(have, c):
			enabled = append(enabled, c)
		case !slices.Contains(avail, c):
			missing = append(missing, "the "+c+" controller is not available in "+base)
		default:
			add = append(add, c)
		}
	}
	if len(add) == 0 {
		return enabled, missing
	}
	plus := "+" + strings.Join(add, " +")
	write := func() error { return writeFile(filepath.Join(base, "cgroup.subtree_control"), plus) }
	err := write()
	if errors.Is(err, unix.EBUSY) && moveSelfToLeaf(base) == nil {
		err = write()
	}
	if err != nil {
		missing = append(missing, fmt.Sprintf("cannot enable %s in %s (%v): cgroup v2 allows controllers only below a cgroup without processes; give the core a delegated cgroup of its own (systemd: Delegate=yes)", plus, base, err))
		return enabled, missing
	}
	return append(enabled, add...), missing
}

// leafName is the v2 leaf a host moves itself into (see enableV2).
const leafName = "graft-host"

// moveSelfToLeaf moves this process into base/graft-host, if it is the only
// process in base.
func moveSelfToLeaf(base string) error {
	procs, err := readPids(filepath.Join(base, "cgroup.procs"))
	if err != nil || len(procs) != 1 || procs[0] != os.Getpid() {
		return errors.New("not alone in its cgroup")
	}
	leaf := filepath.Join(base, leafName)
	if err := os.Mkdir(leaf, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid()))
}

// apply writes the limits.
func (g *Group) apply(r Resources) error {
	var w []struct{ file, value string }
	add := func(c, file, value string) {
		if d, ok := g.ctrl[c]; ok {
			w = append(w, struct{ file, value string }{filepath.Join(d, file), value})
		}
	}
	if g.version == V2 {
		if r.Memory > 0 {
			add("memory", "memory.max", strconv.FormatInt(r.Memory, 10))
			add("memory", "memory.swap.max", "0")
		}
		if r.Pids > 0 {
			add("pids", "pids.max", strconv.FormatInt(r.Pids, 10))
		}
		if r.CPUWeight > 0 {
			add("cpu", "cpu.weight", strconv.FormatInt(r.CPUWeight, 10))
		}
	} else {
		if r.Memory > 0 {
			add("memory", "memory.limit_in_bytes", strconv.FormatInt(r.Memory, 10))
			add("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(r.Memory, 10))
		}
		if r.Pids > 0 {
			add("pids", "pids.max", strconv.FormatInt(r.Pids, 10))
		}
		if r.CPUWeight > 0 {
			add("cpu", "cpu.shares", strconv.FormatInt(min(262144, max(2, r.CPUWeight*1024/100)), 10))
		}
	}
	for _, x := range w {
		err := writeFile(x.file, x.value)
		if errors.Is(err, os.ErrNotExist) && (strings.Contains(x.file, "swap") || strings.Contains(x.file, "memsw")) {
			continue // no swap accounting: there is nothing to cap
		}
		if err != nil {
			return fmt.Errorf("cgroups: set %s to %s: %w", x.file, x.value, err)
		}
	}
	return nil
}

// Dir is the group's membership folder (its cgroup.procs lists the tree).
func (g *Group) Dir() string { return g.dirs[0] }

// Resources are the limits the group was created with.
func (g *Group) Resources() Resources { return g.res }

// Start starts cmd inside the group, so that the process and everything it
// spawns belong to it from the first instruction.
func (g *Group) Start(cmd *exec.Cmd) error {
	if g.version == V2 {
		fd, err := unix.Open(g.dirs[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cgroups: open %s: %w", g.dirs[0], err)
		}
		defer unix.Close(fd)
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start in cgroup %s (cgroup v2 needs Linux 5.7 for CLONE_INTO_CGROUP): %w", g.dirs[0], err)
		}
		return nil
	}
	errc := make(chan error, 1)
	go g.forkFromThread(cmd, errc)
	return <-errc
}

// forkFromThread is Start for v1: an OS thread of the host joins the
// group's freezer and pids hierarchies, forks, and leaves; the child then
// joins the memory and cpu ones by pid. Only those two are joined by
// thread: a host thread in the module's memory cgroup would charge the
// host's memory to the module (v1 charges by the thread group leader) and
// expose the host to the module's OOM killer, so memory and cpu follow
// right after the fork (a fork the plugin made within that instant would
// escape its memory limit, not its kill). The thread lives on afterwards
// (the child's Pdeathsig is tied to it); a thread that cannot leave the
// group is ended instead (the goroutine exits locked), and its child
// killed.
func (g *Group) forkFromThread(cmd *exec.Cmd, errc chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == os.Getpid() {
		// The main thread: keep it busy here, so that the fork runs on
		// another one (a leader left in the group would show the host in
		// the group's process list).
		done := make(chan struct{})
		go func() { g.forkFromThread(cmd, errc); close(done) }()
		<-done
		runtime.UnlockOSThread()
		return
	}
	tid := strconv.Itoa(unix.Gettid())
	var byThread, parents, byPid []string
	for i, d := range g.dirs {
		if d == g.ctrl["freezer"] || d == g.ctrl["pids"] {
			byThread, parents = append(byThread, d), append(parents, g.parents[i])
		} else {
			byPid = append(byPid, d)
		}
	}
	move := func(dirs []string, file, id string) error {
		for _, d := range dirs {
			if err := writeFile(filepath.Join(d, file), id); err != nil {
				return fmt.Errorf("cgroups: move %s %s to %s: %w", file, id, d, err)
			}
		}
		return nil
	}
	if err := move(byThread, "tasks", tid); err != nil {
		if move(parents, "tasks", tid) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
		return
	}
	err := cmd.Start()
	back := move(parents, "tasks", tid)
	if err == nil {
		if err = errors.Join(back, move(byPid, "cgroup.procs", strconv.Itoa(cmd.Process.Pid))); err != nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	}
	if back == nil {
		runtime.UnlockOSThread()
	}
	errc <- err
}

// Procs lists the processes in the group.
func (g *Group) Procs() ([]int, error) {
	return readPids(filepath.Join(g.dirs[0], "cgroup.procs"))
}

// Kill sends SIGKILL to every process of the group: with cgroup.kill on
// v2, else frozen (v1 freezer) so that nothing forks meanwhile. Remove
// kills again whatever is left.
func (g *Group) Kill(ctx context.Context) error {
	if g.version == V2 {
		if err := writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1"); err == nil {
			return nil
		}
	}
	fz, frozen := g.ctrl["freezer"], false
	if fz != "" {
		frozen = freeze(ctx, fz, "FROZEN")
	}
	pids, err := g.Procs()
	for _, pid := range pids {
		if pid != os.Getpid() { // never the host (a thread of it forking into the group)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if frozen {
		freeze(context.WithoutCancel(ctx), fz, "THAWED")
	}
	return err
}

// freeze sets a v1 freezer state and waits for it, within ctx and at most
// half a second (a task in the kernel may delay freezing; killing unfrozen
// is the fallback).
func freeze(ctx context.Context, dir, state string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	file := filepath.Join(dir, "freezer.state")
	for {
		if writeFile(file, state) != nil {
			return false
		}
		if strings.TrimSpace(readString(file)) == state {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
}
