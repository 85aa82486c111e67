// Package cgroup puts one plugin module's whole process tree in a cgroup of
// its own, so that graft can kill all of it (whatever setsid or double fork
// it did), cap its memory, tasks and CPU share, and tell an out-of-memory
// kill from a crash. It works with cgroup v2 (the unified hierarchy) and v1
// (one hierarchy per controller), nesting its groups under the host's own
// cgroup: graft-PID-RANDOM, where PID is the host's.
//
// A process is placed in its group before it runs a single instruction of
// its own: with cgroup v2 it is forked straight into it (clone3 with
// CLONE_INTO_CGROUP, Go's SysProcAttr.UseCgroupFD); with v1, which has no
// such flag, the forking OS thread moves into the group for the fork and
// back out right after (a v1 task inherits the cgroups of the thread that
// forked it).
//
// Why this is written here rather than with github.com/containerd/cgroups/v3
// (which was evaluated): its Freeze polls without a deadline and its v2
// fallback kill waits on processes without one (graft bounds every stop);
// its v2 manager enables controllers from the root of the hierarchy down,
// which fails under delegation; it cannot start a process inside a group;
// it logs through logrus rather than the caller's slog; and it would bring
// cilium/ebpf, godbus, go-systemd and the OCI runtime spec into the core
// for what is, for graft's needs, a few hundred lines of file writes.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Resources are a module's limits; zero means no limit. They mean what
// systemd's MemoryMax, TasksMax and CPUWeight mean.
type Resources struct {
	// Memory is the most memory, in bytes, the module's processes may
	// use together (swap included: they get none beyond it). Over it the
	// kernel's OOM killer kills one of them, in practice the plugin.
	Memory int64
	// Pids bounds the tasks (processes and threads: a Go plugin has about
	// ten) the module may have at once; a fork over it fails.
	Pids int64
	// CPUWeight is the module's share of CPU under contention, 1 to
	// 10000, 100 being the default share of every other process.
	CPUWeight int64
}

// Any says whether r asks for any limit.
func (r Resources) Any() bool { return r.Memory > 0 || r.Pids > 0 || r.CPUWeight > 0 }

// Version is a cgroup version.
type Version int

// Versions of cgroups; Auto picks v2 on a unified system and v1 on a legacy
// or hybrid one (where the controllers live in v1).
const (
	Auto Version = iota
	V1
	V2
)

// v1Controllers are the v1 hierarchies graft uses: freezer to kill a
// frozen tree (first, so that it is the group's membership list when
// present), then the limits.
var v1Controllers = []string{"freezer", "pids", "memory", "cpu"}

// Hierarchy is where this process may create groups: its own cgroup in the
// unified hierarchy (v2) or in each v1 hierarchy graft uses.
type Hierarchy struct {
	version Version
	v2      string            // v2: the host's own cgroup folder
	v1      map[string]string // v1: controller -> the host's own cgroup folder
}

// Detect finds where this process can create cgroups. prefer is Auto, or
// a version to use if the machine has it (a hybrid machine has both: v1
// for the controllers, a v2 hierarchy with none). The error says why there
// is no usable one.
func Detect(prefer Version) (*Hierarchy, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: read mount table: %w", err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroups: read own cgroup: %w", err)
	}
	return detect(mounts, own, prefer)
}

func detect(mountinfo, own []byte, prefer Version) (*Hierarchy, error) {
	paths := ownPaths(own)
	var v2 string
	v1 := map[string]string{}
	for _, m := range parseMounts(mountinfo) {
		switch {
		case m.fstype == "cgroup2" && v2 == "":
			if p, ok := paths[""]; ok {
				v2 = within(m, p)
				if filepath.Base(v2) == leafName {
					v2 = filepath.Dir(v2) // this host moved itself into a leaf (see enableV2)
				}
			}
		case m.fstype == "cgroup":
			for _, c := range v1Controllers {
				if slices.Contains(m.opts, c) && v1[c] == "" {
					if p, ok := paths[c]; ok {
						v1[c] = within(m, p)
					}
				}
			}
		}
	}
	useV2 := prefer == V2 || (prefer == Auto && len(v1) == 0)
	if useV2 {
		if v2 == "" {
			return nil, errors.New("cgroups: no cgroup v2 hierarchy is mounted")
		}
		if err := unix.Access(v2, unix.W_OK); err != nil {
			return nil, fmt.Errorf("cgroups: cannot create groups in %s (the host's own cgroup): %w", v2, err)
		}
		return &Hierarchy{version: V2, v2: v2}, nil
	}
	for c, dir := range v1 {
		if unix.Access(dir, unix.W_OK) != nil {
			delete(v1, c)
		}
	}
	if len(v1) == 0 {
		return nil, errors.New("cgroups: no writable cgroup v1 hierarchy (freezer, pids, memory or cpu) and no cgroup v2")
	}
	return &Hierarchy{version: V1, v1: v1}, nil
}

type mount struct {
	root, point, fstype string
	opts                []string // super options
}

// parseMounts reads /proc/self/mountinfo lines: "id parent dev root point
// options [optional...] - fstype source superoptions".
func parseMounts(b []byte) []mount {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		out = append(out, mount{root: unescape(f[3]), point: unescape(f[4]), fstype: g[0], opts: strings.Split(g[2], ",")})
	}
	return out
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and \.
func unescape(s string) string {
	for _, e := range [][2]string{{`\040`, " "}, {`\011`, "\t"}, {`\012`, "\n"}, {`\134`, `\`}} {
		s = strings.ReplaceAll(s, e[0], e[1])
	}
	return s
}

// ownPaths reads /proc/self/cgroup: controller (or "" for v2) -> path.
func ownPaths(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// within is the folder of cgroup path p under mount m (whose root may be a
// sub-tree of the hierarchy, as in a container).
func within(m mount, p string) string {
	rel, err := filepath.Rel(m.root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = "."
	}
	return filepath.Join(m.point, rel)
}

// Version is the cgroup version in use.
func (h *Hierarchy) Version() Version { return h.version }

// String describes the hierarchy, for the host's start-up log.
func (h *Hierarchy) String() string {
	if h.version == V2 {
		return "cgroup v2 under " + h.v2
	}
	var parts []string
	for _, c := range v1Controllers {
		if d, ok := h.v1[c]; ok {
			parts = append(parts, c+" "+d)
		}
	}
	return "cgroup v1 (" + strings.Join(parts, ", ") + ")"
}

// dirs lists the host's own folders of the hierarchy, membership first.
func (h *Hierarchy) dirs() []string {
	if h.version == V2 {
		return []string{h.v2}
	}
	var out []string
	for _, c := range v1Controllers {
		if d, ok := h.v1[c]; ok {
			out = append(out, d)
		}
	}
	return out
}
