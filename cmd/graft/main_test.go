package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// binDir holds the real graft binary and the test plugins, built once.
var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m, "graft-cli-", &binDir, append(testbin.Pkgs(".", "../../core/testdata/recorder", "../../core/testdata/hangstart",
		"../../upgrade/testdata/kv1", "../../upgrade/testdata/kv2"),
		testbin.Variant("kv2-nodown", "../../upgrade/testdata/kv2", "-X main.noDown=1"),
		testbin.Variant("kv2-panic", "../../upgrade/testdata/kv2", "-X main.fault=panic"),
		testbin.Tagged("graft-failpoints", ".", "graftfailpoints"))...)
}

func graftBin() string       { return filepath.Join(binDir, "graft") }
func plugin(n string) string { return filepath.Join(binDir, n) }

// coreProc is a `graft run` process.
type coreProc struct {
	cmd    *exec.Cmd
	logs   *testbin.Buffer
	config string
	socket string
	exited chan struct{}
}

// defaultConfig is a core with the recorder behaviour and actors a and b.
func defaultConfig() string {
	return fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
limits: {max_attempts: 2}
supervision: {backoff_min: 50ms}
behaviours:
  recorder: {binary: %s, call_timeout: 10s}
actors:
  - {name: a, behaviour: recorder}
  - {name: b, behaviour: recorder, process: own, requires: [a]}
`, plugin("recorder"))
}

// writeConfig writes body as graft.yaml in a fresh short folder.
func writeConfig(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(testbin.ShortDir(t), "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

// startGraft runs `graft run` on config body and waits until the actors in
// ready are running; it is stopped with SIGTERM when the test ends.
func startGraft(t testing.TB, body string, ready []string, extra ...string) *coreProc {
	t.Helper()
	return startGraftAt(t, writeConfig(t, body), ready, extra...)
}

// startGraftAt is startGraft on an existing config file.
func startGraftAt(t testing.TB, path string, ready []string, extra ...string) *coreProc {
	t.Helper()
	return startGraftBin(t, graftBin(), nil, path, ready, extra...)
}

// startGraftBin is startGraftAt with another graft binary (the failpoint
// build) and extra environment.
func startGraftBin(t testing.TB, bin string, env []string, path string, ready []string, extra ...string) *coreProc {
	t.Helper()
	p := &coreProc{logs: &testbin.Buffer{}, config: path, socket: filepath.Join(filepath.Dir(path), "run", "graft.sock"),
		exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"run", "--config", path, "--log-format", "json", "--grace", "5s"}, extra...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("graft run logs:\n%s", p.logs.String())
		}
	})
	cl := control.NewClient(p.socket)
	defer cl.Close()
	testbin.WaitFor(t, 30*time.Second, fmt.Sprintf("actors %v running", ready), func() bool {
		select {
		case <-p.exited:
			t.Fatalf("graft run exited early:\n%s", p.logs.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := cl.Status(ctx)
		if err != nil {
			return false
		}
		running := map[string]bool{}
		for _, a := range st.Actors {
			running[a.Name] = a.Status == "running"
		}
		for _, r := range ready {
			if !running[r] {
				return false
			}
		}
		return true
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *coreProc) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("graft run exited with %d after SIGTERM", code)
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("graft run did not stop within 20s of SIGTERM")
	}
}

// result is one CLI invocation's outcome.
type result struct {
	stdout, stderr string
	code           int
}

// graft runs the real binary with args (and optional stdin, env) and
// returns what it printed and its exit code.
func graft(t testing.TB, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, graftBin(), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "graft %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// ok runs graft and requires success.
func (p *coreProc) ok(t testing.TB, args ...string) string {
	t.Helper()
	r := graft(t, "", nil, append(args, "--config", p.config)...)
	require.Equal(t, 0, r.code, "graft %v failed: %s", args, r.stderr)
	return r.stdout
}

// status reads `graft status --json`.
func (p *coreProc) status(t testing.TB) map[string]control.ActorStatus {
	t.Helper()
	var st control.Status
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "status", "--json")), &st))
	out := map[string]control.ActorStatus{}
	for _, a := range st.Actors {
		out[a.Name] = a
	}
	return out
}

// logLine returns the first JSON log line with msg, or nil.
func (p *coreProc) logLine(msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}
