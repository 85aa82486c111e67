package dynamic_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"graft/dynamic"
)

// plugins maps a testdata plugin name to its binary, built once in TestMain.
var pluginDir string

var pluginNames = []string{"echo", "faulty", "flood", "grandchild", "wrongname", "wrongcookie", "protov2", "badresults", "rawstream"}

const childEnv = "GRAFT_DYNAMIC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	dir, err := os.MkdirTemp("", "graft-dynamic-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir + "/"}
	for _, n := range pluginNames {
		args = append(args, "./testdata/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building test plugins:", err)
		os.Exit(1)
	}
	pluginDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runChild is a host process for the kill -9 test: it starts the echo plugin,
// prints its pid and waits to be killed.
func runChild() {
	mod, err := dynamic.Start(context.Background(), dynamic.Config{
		Path: os.Getenv(childEnv), Behaviour: "echo", Logger: discard(),
	})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", mod.Pid())
	select {}
}

func bin(name string) string { return filepath.Join(pluginDir, name) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLogger logs through t (helps when a test fails).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// countingHandler counts records, for the flood test.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countingHandler) WithGroup(string) slog.Handler             { return h }

func config(t testing.TB, name string) dynamic.Config {
	return dynamic.Config{
		Path:          bin(name),
		StartTimeout:  10 * time.Second,
		HandleTimeout: 10 * time.Second,
		StopTimeout:   5 * time.Second,
		Logger:        testLogger(t),
		SocketDir:     shortDir(t),
	}
}

// shortDir is a temp dir with a short path: unix socket paths are limited
// to 107 bytes, and t.TempDir's names are long.
func shortDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "gd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// start starts a plugin and stops it at the end of the test.
func start(t testing.TB, cfg dynamic.Config) *dynamic.Module {
	t.Helper()
	m, err := dynamic.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Path, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

// alive says whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// children lists the live child processes of this test process.
func children() []int {
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
		if len(f) > 2 && f[1] != "Z" && f[2] == me {
			out = append(out, pid)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

func readLine(r io.Reader) (string, error) {
	return bufio.NewReader(r).ReadString('\n')
}

func emptyDir(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("socket dir %s not cleaned: %v", dir, names)
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) logger() *slog.Logger { return slog.New(countingHandler{&c.n}) }

// execSelf re-executes the test binary as a host process (see runChild).
func execSelf(t testing.TB) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+bin("echo"))
	cmd.Stderr = os.Stderr
	return cmd
}
