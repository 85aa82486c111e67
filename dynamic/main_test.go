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
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/testbin"
)

// plugins maps a testdata plugin name to its binary, built once in TestMain.
var pluginDir string

var pluginNames = []string{"echo", "faulty", "flood", "grandchild", "wrongname", "wrongcookie", "protov2", "badresults", "rawstream", "crashstart", "tree"}

// childEnv names the plugin a child host process runs (see runChild);
// childModeEnv, if set, makes it take commands on stdin (see hostChild).
const (
	childEnv     = "GRAFT_DYNAMIC_TEST_CHILD"
	childModeEnv = "GRAFT_DYNAMIC_TEST_CHILD_MODE"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	if slices.ContainsFunc(os.Args, func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") }) {
		os.Exit(m.Run()) // a fuzzing worker runs FuzzHandleResult alone: no plugins
	}
	var pkgs []string
	for _, n := range pluginNames {
		pkgs = append(pkgs, "./testdata/"+n)
	}
	testbin.Main(m, "graft-dynamic-plugins-", &pluginDir, testbin.Pkgs(pkgs...)...)
}

// runChild is a host process for the kill -9 test: it starts the echo plugin,
// prints its pid and waits to be killed.
func runChild() {
	if os.Getenv(childModeEnv) != "" {
		hostChild(os.Getenv(childEnv), os.Getenv(childModeEnv))
		return
	}
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
	return testbin.Logger(t)
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

// start starts a plugin and stops it at the end of the test.
func start(t testing.TB, cfg dynamic.Config) *dynamic.Instance {
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

func shortDir(t testing.TB) string { return testbin.ShortDir(t) }
func alive(pid int) bool           { return testbin.Alive(pid) }
func children() []int              { return testbin.Children() }
func countFDs() int                { return testbin.CountFDs() }
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, d, what, cond)
}
