package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/testbin"
)

// Every kind of name the store allows (mailbox.CheckActorName: 1 to 255
// bytes, no control characters) reaches its actor through the real CLI,
// including names that are path-hostile in a URL.
func TestEveryAllowedActorNameWorksThroughTheCLI(t *testing.T) {
	names := []string{"plain", "Digits-0123_under", "a.b", ".", "..", "...", ".hidden", "account/alice", "/lead", "trail/",
		"a/../b", "ünïcödé-名前", "with space", "50%off", "%2E%2E", "q?x#y&z=1", strings.Repeat("n", 255)}
	var body strings.Builder
	fmt.Fprintf(&body, "store: {path: ./data}\ncontrol: {dir: ./run}\nbehaviours:\n  recorder: {binary: %s}\nactors:\n", plugin("recorder"))
	for _, n := range names {
		fmt.Fprintf(&body, "  - {name: %s, behaviour: recorder}\n", strconv.Quote(n))
	}
	p := startGraft(t, body.String(), names)
	for _, n := range names {
		out := p.ok(t, "send", n, "hello")
		assert.Contains(t, out, "sent to "+n+" as message 1", n)
		assert.Equal(t, "ok:ping", p.ok(t, "call", n, "ping"), n)
		st, ok := p.status(t)[n]
		require.True(t, ok, "status shows %q", n)
		assert.Equal(t, uint64(2), st.Processed, n)
		assert.Equal(t, "stopped "+n+"\n", p.ok(t, "stop", n), n)
		assert.Equal(t, "stopped", p.status(t)[n].Status, n)
		assert.Equal(t, "started "+n+"\n", p.ok(t, "start", n), n)
		testbin.WaitFor(t, 20*time.Second, n+" running again", func() bool { return p.status(t)[n].Status == "running" })
		assert.Equal(t, "ok:again", p.ok(t, "call", n, "again"), n)
		assert.Equal(t, n, p.state(t, n).Actor, n)
	}
	r := graft(t, "", nil, "call", "../call", "x", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, `actor "../call": unknown actor`, "an unknown name is reported as such, whatever it holds")
	for name, want := range map[string]string{
		"":                       "actor name is empty",
		"tab	here":               `actor name "tab\there" has a control character at byte 3`,
		strings.Repeat("n", 256): "is 256 bytes, over 255",
	} {
		for _, args := range [][]string{{"send", name, "x"}, {"call", name, "x"}, {"stop", name}, {"state", name}} {
			r := graft(t, "", nil, append(args, "--config", p.config)...)
			assert.Equal(t, exitError, r.code, "%q", args)
			assert.Contains(t, r.stderr, want, "a name no actor can have is refused as such: %q", args)
		}
	}
}

// A client's message id is at most 256 bytes, in send and call alike.
func TestMessageIDIsAtMost256Bytes(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	long, limit := strings.Repeat("i", 257), strings.Repeat("i", 256)
	for _, cmd := range []string{"send", "call"} {
		r := graft(t, "", nil, cmd, "a", "x", "--id", long, "--config", p.config)
		assert.Equal(t, exitError, r.code, cmd)
		assert.Contains(t, r.stderr, "is 257 bytes, over the 256-byte limit: use a shorter id", cmd)
		help := p.ok(t, cmd, "--help")
		assert.Contains(t, help, "idempotency id, at most 256 bytes", cmd)
	}
	assert.Contains(t, p.ok(t, "send", "a", "x", "--id", limit), "as message 1")
	assert.Equal(t, "ok:x", p.ok(t, "call", "a", "x", "--id", limit), "the id's send was applied; the call gets its reply")
	assert.Equal(t, uint64(1), p.status(t)["a"].Processed, "the refused ids enqueued nothing")
}

// The metrics endpoint has no authentication: graft warns when it listens
// beyond loopback, and only then.
func TestMetricsBeyondLoopbackIsWarnedAbout(t *testing.T) {
	const msg = "metrics endpoint has no authentication and listens beyond loopback: anyone who can reach it can read it; " +
		"bind it to loopback (--metrics-addr 127.0.0.1:PORT) or restrict access with a firewall or an authenticating proxy"
	for addr, warned := range map[string]bool{"0.0.0.0:0": true, "127.0.0.1:0": false, "localhost:0": false} {
		p := startGraft(t, defaultConfig(), []string{"a"}, "--metrics-addr", addr)
		require.NotNil(t, p.logLine("serving metrics"), addr)
		line := p.logLine(msg)
		if !warned {
			assert.Nil(t, line, addr)
			continue
		}
		require.NotNil(t, line, "%s: no warning in:\n%s", addr, p.logs.String())
		assert.Equal(t, "WARN", line["level"], addr)
		assert.Equal(t, "every interface", line["listens_on"], addr)
		p.stop(t)
		assert.Equal(t, 1, strings.Count(p.logs.String(), "metrics endpoint has no authentication"), "one line")
	}
}

// A config that is not a regular file, or is too large, is refused at once
// with the file and the reason named.
func TestConfigMustBeASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(big, []byte("store: {path: ./data}\n#"+strings.Repeat("x", 2<<20)), 0o600))
	fifo := filepath.Join(dir, "fifo.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for path, want := range map[string]string{
		"/dev/zero": "read config /dev/zero: not a regular file (a character device): give the path of a YAML config file",
		fifo:        "read config " + fifo + ": not a regular file (a named pipe)",
		dir:         "read config " + dir + ": not a regular file (a directory)",
		big:         "read config " + big + ": the file is 2097175 bytes, over the 1048576-byte (1 MiB) limit of a config file",
	} {
		for _, args := range [][]string{{"run", "--config", path}, {"status", "--config", path}} {
			start := time.Now()
			r := graft(t, "", nil, args...)
			assert.Equal(t, exitError, r.code, "%v: %s", args, r.stderr)
			assert.Contains(t, r.stderr, want, args)
			assert.Less(t, time.Since(start), 20*time.Second, "%v is refused at once", args)
		}
	}
}
