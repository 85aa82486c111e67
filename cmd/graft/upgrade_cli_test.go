package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/internal/testbin"
)

// kvSource is a fresh short folder holding a copy of kv v1 as "kv", the
// configured binary of the kv behaviour (a copy, so that the watcher of
// one test's core never sees another test's upgrade).
func kvSource(t testing.TB) (dir, src string) {
	t.Helper()
	dir = testbin.ShortDir(t)
	src = filepath.Join(dir, "kv")
	b, err := os.ReadFile(plugin("kv1"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(src, b, 0o755))
	return dir, src
}

// kvSourceConfig writes, in a folder of its own, the config of a core on a copy
// of kv v1 as the configured binary (kvSource), with the actors given as
// YAML list lines, and returns its path.
func kvSourceConfig(t *testing.T, actors string) string {
	t.Helper()
	dir, src := kvSource(t)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("store: {path: ./data}\ncontrol: {dir: ./run}\nbehaviours:\n  kv: {binary: %s}\nactors:%s\n", src, actors)), 0o644))
	return path
}

// kvCore is a core running three kv actors (k2 with a process of its own)
// on a copy of kv v1 as the configured binary; only k0 has handled a
// message.
func kvCore(t *testing.T) *coreProc {
	t.Helper()
	path := kvSourceConfig(t, `
  - {name: k0, behaviour: kv}
  - {name: k1, behaviour: kv}
  - {name: k2, behaviour: kv, process: own}`)
	p := startGraftAt(t, path, []string{"k0", "k1", "k2"})
	assert.Equal(t, "v1:1", p.ok(t, "call", "k0", "hello"))
	return p
}

// Upgrade, rollback and history count the actors moved, not the steps
// (the behaviour-wide "load" step has no actor).
func TestUpgradeCommandsCountActorsNotSteps(t *testing.T) {
	p := kvCore(t)
	out := p.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	assert.Regexp(t, `^upgrade of kv: 1\.0\.0 \(\w+\) -> 2\.0\.0 \(\w+\), completed \(3 actors\)\n$`, out)
	out = p.ok(t, "rollback", "kv")
	assert.Regexp(t, `^rollback of kv: 2\.0\.0 \(\w+\) -> 1\.0\.0 \(\w+\), completed \(3 actors\)\n$`, out)
	table := p.ok(t, "history")
	t.Log(table)
	rows := regexp.MustCompile(`(?m)^\d+\s+(upgrade|rollback)\s+kv\s.*\s(\d+)\s+completed$`).FindAllStringSubmatch(table, -1)
	require.Len(t, rows, 2, table)
	for _, r := range rows {
		assert.Equal(t, "3", r[2], "ACTORS of the %s", r[1])
	}
}

// An actor that never handled a message shows the module and schema it
// runs on after an upgrade, like the actors that did.
func TestStatusShowsTheModuleOfAnActorWithoutState(t *testing.T) {
	p := kvCore(t)
	st := p.status(t)
	assert.Equal(t, "1.0.0", st["k1"].Module)
	assert.EqualValues(t, 1, st["k1"].Schema)
	p.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	st = p.status(t)
	for _, a := range []string{"k0", "k1", "k2"} {
		assert.Equal(t, "2.0.0", st[a].Module, a)
		assert.EqualValues(t, 2, st[a].Schema, a)
	}
	assert.Regexp(t, `(?m)^k1\s+kv\s+2\.0\.0\s+2\s+running\s`, p.ok(t, "status"))
}

// unixGet fetches path from the control API on sock, as curl
// --unix-socket would.
func unixGet(t *testing.T, sock, path string) []byte {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://graft"+path, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// checkJSONStyle fails for any object key that is not snake_case, and for
// a duration that is not in seconds.
func checkJSONStyle(t *testing.T, what string, v any) {
	t.Helper()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			assert.Regexp(t, snake, k, "%s: key %q", what, k)
			if k == "duration" || strings.HasSuffix(k, "_ns") {
				t.Errorf("%s: %q is not a duration in seconds", what, k)
			}
			checkJSONStyle(t, what+"."+k, x)
		}
	case []any:
		for i, x := range v {
			checkJSONStyle(t, fmt.Sprintf("%s[%d]", what, i), x)
		}
	}
}

// History, upgrade and rollback speak the JSON of status: snake_case,
// durations in seconds, times in RFC 3339; on the CLI and on the API.
func TestHistoryJSONMatchesTheAPIStyle(t *testing.T) {
	p := kvCore(t)
	outputs := map[string]string{
		"upgrade --json":  p.ok(t, "upgrade", "kv", "--binary", plugin("kv2"), "--json"),
		"rollback --json": p.ok(t, "rollback", "kv", "--json"),
		"history --json":  p.ok(t, "history", "--json"),
		"GET /v1/history": string(unixGet(t, p.socket, "/v1/history")),
		"status --json":   p.ok(t, "status", "--json"),
		"GET /v1/status":  string(unixGet(t, p.socket, "/v1/status")),
	}
	for what, out := range outputs {
		var v any
		require.NoError(t, json.Unmarshal([]byte(out), &v), "%s: %s", what, out)
		checkJSONStyle(t, what, v)
	}
	var hist []struct {
		ID              uint64  `json:"id"`
		Kind            string  `json:"kind"`
		Behaviour       string  `json:"behaviour"`
		Started         string  `json:"started"`
		Ended           string  `json:"ended"`
		DurationSeconds float64 `json:"duration_seconds"`
		Actors          int     `json:"actors"`
		Steps           []struct {
			Actor           string  `json:"actor"`
			Step            string  `json:"step"`
			DurationSeconds float64 `json:"duration_seconds"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(outputs["GET /v1/history"]), &hist))
	require.Len(t, hist, 2)
	assert.Equal(t, "upgrade", hist[0].Kind)
	assert.Equal(t, "kv", hist[0].Behaviour)
	assert.Equal(t, 3, hist[1].Actors)
	_, err := time.Parse(time.RFC3339, hist[0].Started)
	assert.NoError(t, err, "started is RFC 3339")
	assert.Positive(t, hist[0].DurationSeconds)
	assert.Less(t, hist[0].DurationSeconds, 60.0, "seconds, not nanoseconds")
	require.NotEmpty(t, hist[0].Steps)
	for _, s := range hist[0].Steps {
		assert.Less(t, s.DurationSeconds, 60.0, "step %s in seconds", s.Step)
	}
	var cli []map[string]any
	require.NoError(t, json.Unmarshal([]byte(outputs["history --json"]), &cli))
	require.Len(t, cli, 2)
	assert.EqualValues(t, hist[1].ID, cli[1]["id"])
	assert.EqualValues(t, 3, cli[1]["actors"])
}

// `graft upgrade --dry-run` moves nothing and reports. A state with no
// way back down is a warning; a migration that panics fails the dry run:
// graft exits 4, and the upgrade to that binary is then refused unless
// forced.
func TestUpgradeDryRun(t *testing.T) {
	p := kvCore(t)
	before := p.status(t)

	out := p.ok(t, "upgrade", "kv", "--binary", plugin("kv2-nodown"), "--dry-run")
	assert.Regexp(t, `dry run of kv 1\.0\.0 \(\w+\) -> 2\.0\.0 \(\w+\): 3 actors \(2 without state\), migrations 1 ok, round trip 0 ok, 1 failed`, out)
	assert.Contains(t, out, "no down-migration: 1\n    k0: module 2.0.0 migrates down to [], not to schema 1")

	r := graft(t, "", nil, "upgrade", "kv", "--binary", plugin("kv2-panic"), "--dry-run", "--config", p.config)
	assert.Equal(t, 4, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "migration panicked: 1\n    k0: ")
	assert.Contains(t, r.stdout, "panic in Migrate: migration panicked on purpose")
	assert.Contains(t, r.stderr, "an upgrade to this binary is refused unless given --force")
	after := p.status(t)
	for _, a := range []string{"k0", "k1", "k2"} {
		assert.Equal(t, before[a].Module, after[a].Module, "%s moved", a)
	}

	r = graft(t, "", nil, "upgrade", "kv", "--binary", plugin("kv2-panic"), "--config", p.config)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "the last dry run of this binary failed")
	assert.Contains(t, r.stderr, "and dry-run it again; or give --force to run the upgrade anyway")
	r = graft(t, "", nil, "upgrade", "kv", "--binary", plugin("kv2-panic"), "--force", "--config", p.config)
	assert.NotContains(t, r.stderr, "the last dry run", "--force runs the upgrade")
	assert.Contains(t, r.stderr, "migration panicked on purpose", "which fails on its own, leaving v1")

	var rep api.DryRunReport
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "upgrade", "kv", "--binary", plugin("kv2"), "--dry-run", "--json")), &rep))
	assert.Equal(t, 1, rep.RoundTrip)
	assert.Zero(t, rep.Failed)
	assert.Regexp(t, `completed \(3 actors\)`, p.ok(t, "upgrade", "kv", "--binary", plugin("kv2")))
	assert.Regexp(t, `(?m)^\d+\s+dry-run\s+kv\s.*failed: dry run of kv .*migration panicked 1`, p.ok(t, "history"))
}
