package testbin

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Alive says whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Children lists the live child processes of this process.
func Children() []int {
	ents, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// After the command: state, then parent pid (then process group,
		// which a plugin has of its own, so it must not be the test).
		if len(f) > 1 && f[0] != "Z" && f[1] == me {
			out = append(out, pid)
		}
	}
	return out
}

// CountFDs counts this process's open file descriptors.
func CountFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// WaitFor polls cond until it holds or the deadline passes: tests wait on
// conditions with deadlines, never on a guessed sleep.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ShortDir is a temp dir with a short path (unix socket paths are limited
// to 107 bytes, and t.TempDir's names are long), removed after the test.
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "g")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Running lists the live processes executing the binary at path (by
// /proc/PID/exe), whoever their parent is: a plugin outlives a killed core
// as a grandchild of the test, not a child.
func Running(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err == nil && exe == path && Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// Returns runs f and fails the test if it has not returned within the
// deadline: for a call that must not hang, with a generous deadline (tens
// of seconds on a loaded machine), never a figure the call has to meet.
// A hung f is left running on its own goroutine.
func Returns(t testing.TB, within time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not return within %s", what, within)
	}
}
