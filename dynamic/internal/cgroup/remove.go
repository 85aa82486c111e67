package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Remove kills whatever is left in the group, waits (within ctx) until it
// is empty and removes its folders. Processes of the group that were
// re-parented to this process (a child subreaper) are reaped by pid: they
// are known to be the module's.
func (g *Group) Remove(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		pids, err := g.Procs()
		if errors.Is(err, os.ErrNotExist) {
			return g.rmdirs()
		}
		for _, pid := range pids {
			if pid == os.Getpid() {
				continue // a thread of the host forking into the group, leaving it at once
			}
			_ = unix.Kill(pid, unix.SIGKILL)
			reapIfMine(pid)
		}
		if len(pids) == 0 {
			if err := g.rmdirs(); err == nil {
				return nil
			} else if ctx.Err() != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroups: %s still holds processes %v: %w", g.dirs[0], pids, ctx.Err())
		case <-tick.C:
		}
	}
}

// reapIfMine reaps pid if it is an exited child of this process.
func reapIfMine(pid int) {
	if parentOf(pid) != os.Getpid() {
		return
	}
	var info unix.Siginfo
	_ = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil) // a zombie by now, or soon: the next poll
}

// parentOf reads a process's parent pid from /proc, 0 if it is gone.
func parentOf(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// startTime reads when a process started (clock ticks after boot), 0 if
// it is gone: with its pid, it names a process for good.
func startTime(pid int) uint64 {
	f := statFields(pid)
	if len(f) < 20 {
		return 0
	}
	t, _ := strconv.ParseUint(f[19], 10, 64)
	return t
}

// statFields are the fields of /proc/PID/stat after the command name
// (state first).
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// rmdirs removes the group's folders (deepest first does not matter: they
// are leaves), ignoring those already gone.
func (g *Group) rmdirs() error {
	var errs []error
	for _, d := range g.dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("cgroups: remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// Events counts what the kernel did to the group because of its limits.
type Events struct {
	OOMKills int64 // processes killed for going over the memory limit
	PidsMax  int64 // forks refused at the pids limit
}

// Events reads the group's memory and pids events (zero where the
// controller is not in use).
func (g *Group) Events() Events {
	var e Events
	if d, ok := g.ctrl["memory"]; ok && g.res.Memory > 0 {
		file := "memory.events"
		if g.version == V1 {
			file = "memory.oom_control"
		}
		e.OOMKills = keyed(filepath.Join(d, file), "oom_kill")
	}
	if d, ok := g.ctrl["pids"]; ok && g.res.Pids > 0 {
		e.PidsMax = keyed(filepath.Join(d, "pids.events"), "max")
	}
	return e
}

// keyed reads "key value" lines and returns key's value, 0 if absent.
func keyed(file, key string) int64 {
	for _, line := range strings.Split(readString(file), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Sweep removes the groups left by hosts that died without removing them
// (kill -9): graft-PID-START-RANDOM under this host's own cgroup, where no
// process PID that started at START is alive. Their processes are killed
// first. It returns the groups removed. Hosts call it at start, and before
// each module start, so what a killed host left is cleared by the next.
func (h *Hierarchy) Sweep(ctx context.Context) ([]string, error) {
	stale := map[string][]string{} // name -> folders
	for _, parent := range h.dirs() {
		ents, err := os.ReadDir(parent)
		if err != nil {
			return nil, fmt.Errorf("cgroups: list %s: %w", parent, err)
		}
		for _, e := range ents {
			if pid, start, ok := owner(e.Name()); ok && e.IsDir() && (!processExists(pid) || startTime(pid) != start) {
				stale[e.Name()] = append(stale[e.Name()], filepath.Join(parent, e.Name()))
			}
		}
	}
	var removed []string
	var errs []error
	for name, dirs := range stale {
		g := &Group{version: h.version, name: name, dirs: dirs, ctrl: map[string]string{}}
		for _, d := range dirs {
			if fz, ok := h.v1["freezer"]; ok && filepath.Dir(d) == fz {
				g.ctrl["freezer"] = d
			}
		}
		_ = g.Kill(ctx)
		if err := g.Remove(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// owner parses the host pid and start time out of a group name
// graft-PID-START-RANDOM.
func owner(name string) (pid int, start uint64, ok bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 4 || parts[0] != "graft" {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(parts[2], 10, 64)
	return pid, start, err == nil
}

func processExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func readString(file string) string {
	b, _ := os.ReadFile(file)
	return string(b)
}

func readPids(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// writeFile writes a cgroup control file (which exists; never created).
func writeFile(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
