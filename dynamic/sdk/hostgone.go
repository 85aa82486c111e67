package sdk

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// endTree ends the plugin because the host is gone: it kills every other
// process of its cgroup (when the host gave it one), then its process group
// with itself in it, so that nothing it started outlives the host, and
// exits with status 3 should it still be there. The host is not around to
// do it: after kill -9 of the host, the plugin is the last one who knows
// its tree.
func endTree(stderr *os.File, why string) {
	// With the host dead, stderr is a pipe nobody reads: a write to it
	// would end this process with SIGPIPE before it killed anything.
	signal.Ignore(syscall.SIGPIPE)
	fmt.Fprintf(stderr, "github.com/graft-host/graft/sdk: %s: killing the plugin's processes and exiting\n", why)
	killCgroup(os.Getenv(wire.EnvCgroup))
	if pid := os.Getpid(); syscall.Getpgrp() == pid {
		// The plugin leads its group (the host starts it so): kill(-pgid)
		// reaches every process still in it, this one included. A plugin
		// run in someone else's group (by hand) must not kill that group.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	os.Exit(3)
}

// killCgroup kills every process of the plugin's own cgroup dir but this
// one: with cgroup.kill (v2, Linux 5.14) at once (this one too), else by
// pid from cgroup.procs, a few rounds so that what was being forked is
// caught too. It does nothing unless dir is a graft module group this
// process belongs to.
func killCgroup(dir string) {
	dir = filepath.Clean(dir)
	if !strings.HasPrefix(dir, "/sys/fs/cgroup/") || !strings.HasPrefix(filepath.Base(dir), "graft-") || !inCgroup(filepath.Base(dir)) {
		return
	}
	// dir is checked above: a graft group under the cgroup mount, this
	// process's own.
	if f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0); err == nil { //nolint:gosec // G703: see above
		_, err = f.WriteString("1")
		_ = f.Close()
		if err == nil {
			return
		}
	}
	self := os.Getpid()
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")) //nolint:gosec // G703: dir is checked above
		if err != nil {
			return
		}
		others := 0
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != self {
				others++
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if others == 0 {
			return
		}
		time.Sleep(time.Millisecond) // let the killed leave the group, then look again
	}
}

// inCgroup says whether this process's cgroup (in some hierarchy) is named
// name.
func inCgroup(name string) bool {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(line, "/"+name) {
			return true
		}
	}
	return false
}

// useRawStdio points os.Stdout and os.Stderr back at the plugin's real
// stdout and stderr (saved before Serve), which go-plugin's Serve had
// replaced by pipes that it forwards over gRPC in 1 KiB messages: a handler
// that logs a lot then costs the host a gRPC message per KiB. The real ones
// are plain pipes the host reads in large chunks and rate-limits cheaply.
// It runs in Info, the host's first call: Serve swaps the files before it
// starts serving, so the swap here comes after it. (Keeping the saved
// *os.File values alive also keeps their finalizers from closing fds 1
// and 2 once Serve has dropped them.)
func useRawStdio(stdout, stderr *os.File) {
	if stdout != nil && stderr != nil {
		os.Stdout, os.Stderr = stdout, stderr
	}
}
