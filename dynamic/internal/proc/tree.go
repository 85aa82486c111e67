package proc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// Tree contains a plugin's descendants beyond its process group: those
// that called setsid or setpgid, and those whose parent died. A cgroup
// (*cgroup.Group) is one; Adopter, for hosts without a usable cgroup, is
// the other.
type Tree interface {
	// Start starts cmd inside the tree.
	Start(cmd *exec.Cmd) error
	// Kill sends SIGKILL to every process of the tree.
	Kill(ctx context.Context) error
	// Remove, once the plugin itself is reaped, kills what is left, waits
	// within ctx until the tree is empty, and releases it.
	Remove(ctx context.Context) error
}

// Adopter is the Tree of a host that is a child subreaper
// (PR_SET_CHILD_SUBREAPER) but has no usable cgroup: a descendant whose
// parent dies is re-parented to the host rather than to init, so the host
// can still find and kill it. It is recognised by an id in its
// environment (GRAFT_MODULE_ID, inherited unless a descendant clears
// it), and reaped by its pid: the host never waits for "any child". A
// descendant re-parented and exited while the module runs stays a zombie
// until the module ends (then its environment, which names its module, is
// gone); the sweep at the end finds the live ones.
type Adopter struct {
	id     string
	leader int
	// mu serialises sweeps: a sweep skips zombies (their environment is
	// gone), so it must not run while another has killed a descendant
	// and not yet reaped it.
	mu sync.Mutex
}

// NewAdopter returns an Adopter, or nil if this process is not a child
// subreaper (then orphans go to init, out of reach).
func NewAdopter() *Adopter {
	if !IsSubreaper() {
		return nil
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return &Adopter{id: hex.EncodeToString(b)}
}

// IsSubreaper says whether this process is a child subreaper.
func IsSubreaper() bool {
	v := new(int32)                                                                     // PR_GET_CHILD_SUBREAPER writes an int there (heap: it does not move)
	err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(v)), 0, 0, 0) //nolint:gosec // G103: this prctl answers through a pointer
	runtime.KeepAlive(v)
	return err == nil && *v != 0
}

// Start marks the plugin's environment with the id and starts it.
func (a *Adopter) Start(cmd *exec.Cmd) error {
	cmd.Env = append(cmd.Env, wire.EnvModuleID+"="+a.id)
	if err := cmd.Start(); err != nil {
		return err
	}
	a.leader = cmd.Process.Pid
	return nil
}

// Kill kills and reaps the host's children that carry the id, over and
// over: each one killed hands its own children to the host.
func (a *Adopter) Kill(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	marker := []byte(wire.EnvModuleID + "=" + a.id + "\x00")
	for {
		found := 0
		for _, pid := range children(os.Getpid()) {
			// A zombie has no environment left; one still in the plugin's
			// group (whose id is reserved while the leader is unreaped)
			// is known by its group.
			if pid == a.leader || (!hasEnv(pid, marker) && groupOf(pid) != a.leader) {
				continue
			}
			found++
			_ = unix.Kill(pid, unix.SIGKILL)
			if err := reapPid(ctx, pid); err != nil {
				return err
			}
		}
		if found == 0 {
			return nil
		}
	}
}

// Remove is a last Kill: the plugin is gone, so everything it left that
// can still be found is the host's child by now.
func (a *Adopter) Remove(ctx context.Context) error { return a.Kill(ctx) }

// reapPid reaps pid, a child of this process that was sent SIGKILL.
func reapPid(ctx context.Context, pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return nil // not ours to reap after all (someone else's child)
		case err != nil:
			return fmt.Errorf("reap descendant %d: %w", pid, err)
		case info.Signo != 0:
			return nil // reaped (si_signo is SIGCHLD)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reap descendant %d: %w", pid, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// hasEnv says whether process pid's environment holds entry (KEY=value\0).
func hasEnv(pid int, entry []byte) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	return bytes.HasPrefix(b, entry) || bytes.Contains(b, append([]byte{0}, entry...))
}

// children lists the live processes whose parent is pid, from
// /proc/PID/task/*/children where the kernel has it, else from every
// process's stat.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	if len(tasks) > 0 {
		return out
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := parentOf(c); err == nil && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// parentOf reads a process's parent pid from /proc/PID/stat.
func parentOf(pid int) (int, error) {
	f, err := stat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// groupOf reads a process's group id, 0 if it is gone.
func groupOf(pid int) int {
	f, err := stat(pid)
	if err != nil {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// stat is /proc/PID/stat after the command name: state, ppid, pgrp, ...
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return nil, errors.New("malformed stat")
	}
	return f, nil
}
