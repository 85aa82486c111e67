package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// kvFour is a core running four kv actors on kv v1, with policy (a
// behaviour's upgrade settings, or "") in its config.
func kvFour(t *testing.T, policy string) *coreProc {
	t.Helper()
	dir, src := kvSource(t)
	if policy != "" {
		policy = ", upgrade: " + policy
	}
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
behaviours:
  kv: {binary: %s%s}
actors:
  - {name: k0, behaviour: kv}
  - {name: k1, behaviour: kv}
  - {name: k2, behaviour: kv}
  - {name: k3, behaviour: kv}
`, src, policy)), 0o644))
	return startGraftAt(t, path, []string{"k0", "k1", "k2", "k3"})
}

// background runs graft with args in the background; wait returns what it
// printed and its exit code.
func (p *coreProc) background(t *testing.T, stderr *testbin.Buffer, args ...string) (wait func() result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, graftBin(), append(args, "--config", p.config)...)
	var out bytes.Buffer
	errOut := stderr
	cmd.Stdout, cmd.Stderr = &out, errOut
	require.NoError(t, cmd.Start())
	t.Cleanup(cancel)
	return func() result {
		err := cmd.Wait()
		cancel()
		r := result{stdout: out.String(), stderr: errOut.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return r
	}
}

// baking waits until status shows kv's canary baking and returns it.
func (p *coreProc) baking(t *testing.T) control.UpgradeProgress {
	t.Helper()
	var up control.UpgradeProgress
	testbin.WaitFor(t, 30*time.Second, "kv's canary baking", func() bool {
		var st control.Status
		require.NoError(t, json.Unmarshal([]byte(p.ok(t, "status", "--json")), &st))
		for _, u := range st.Upgrades {
			if u.Behaviour == "kv" && u.Phase == "baking" {
				up = u
				return true
			}
		}
		return false
	})
	return up
}

// A canary from the command line: only the named actor moves, status
// shows the bake with its time left, --promote moves the rest, and the
// waiting `graft upgrade` prints the record with what decided.
func TestCanaryFromTheCommandLineIsPromoted(t *testing.T) {
	p := kvFour(t, "")
	for _, a := range []string{"k0", "k1", "k2", "k3"} {
		p.ok(t, "call", a, "put")
	}
	var stderr testbin.Buffer
	wait := p.background(t, &stderr, "upgrade", "kv", "--binary", plugin("kv2"), "--canary", "k1", "--bake", "1h",
		"--failure-rate-increase", "5%", "--p99-ratio", "3")
	up := p.baking(t)
	assert.Equal(t, []string{"k1"}, up.Group)
	assert.Equal(t, "1 actor", up.Canary)
	assert.InDelta(t, time.Hour.Seconds(), up.BakeLeftSeconds, 60)
	st := p.status(t)
	assert.Equal(t, "2.0.0", st["k1"].Module, "the canary runs the new version")
	for _, a := range []string{"k0", "k2", "k3"} {
		assert.Equal(t, "1.0.0", st[a].Module, "%s stays on the old version during the bake", a)
	}
	table := p.ok(t, "status")
	assert.Regexp(t, `(?m)^kv\s+upgrade\s+1\.0\.0 \(\w+\)\s+2\.0\.0 \(\w+\)\s+baking canary 1 actor \(k1\), (59m\d+s|1h0m0s) left`, table)
	testbin.WaitFor(t, 30*time.Second, "the waiting command tells the bake", func() bool {
		return strings.Contains(stderr.String(), "kv: canary 1 actor (k1) on 2.0.0")
	})
	assert.Regexp(t, `kv: canary 1 actor \(k1\) on 2\.0\.0 \(\w+\), baking beside 1\.0\.0 \(\w+\), about 1h0m0s left`, stderr.String())
	assert.Regexp(t, `(?m)^-\s+upgrade\s+kv\s+1\.0\.0 \(\w+\)\s+2\.0\.0 \(\w+\)\s.*\s-\s+1\s+in progress: baking \(canary 1 actor\)$`, p.ok(t, "history"), "the history shows the bake while it runs")

	out := p.ok(t, "upgrade", "kv", "--promote")
	assert.Contains(t, out, "promote of kv: the bake ends now")
	r := wait()
	require.Equal(t, 0, r.code, "graft upgrade: %s", r.stderr)
	assert.Regexp(t, `(?s)completed \(4 actors\)\n  canary 1 actor for 1h0m0s: promoted: promoted by an operator after \d+s of the bake`, r.stdout)
	st = p.status(t)
	for _, a := range []string{"k0", "k1", "k2", "k3"} {
		assert.Equal(t, "2.0.0", st[a].Module, a)
	}
	assert.Regexp(t, `(?m)^\d+\s+upgrade\s+kv\s.*completed \(canary 1 actor for 1h0m0s: promoted`, p.ok(t, "history"))
	res := graft(t, "", nil, "upgrade", "kv", "--promote", "--config", p.config)
	assert.Equal(t, 1, res.code)
	assert.Contains(t, res.stderr, "no canary upgrade of this behaviour is baking")
}

// The config's policy gives a plain `graft upgrade` its canary; --abort
// moves the canary back, and the waiting command exits 1 saying so.
func TestConfiguredCanaryIsAborted(t *testing.T) {
	p := kvFour(t, "{canary: 50%, bake: 1h}")
	for _, a := range []string{"k0", "k1", "k2", "k3"} {
		p.ok(t, "call", a, "put")
	}
	var stderr testbin.Buffer
	wait := p.background(t, &stderr, "upgrade", "kv", "--binary", plugin("kv2"))
	up := p.baking(t)
	require.Len(t, up.Group, 2, "50%% of 4 actors")
	p.ok(t, "upgrade", "kv", "--abort")
	r := wait()
	assert.Equal(t, 1, r.code, "a rolled back canary fails the command: %s", r.stdout)
	assert.Contains(t, r.stderr, "the canary was rolled back")
	st := p.status(t)
	for _, a := range []string{"k0", "k1", "k2", "k3"} {
		assert.Equal(t, "1.0.0", st[a].Module, "%s is on the old version again", a)
		assert.Equal(t, "v1:2", p.ok(t, "call", a, "put"), "%s kept its state through the round trip", a)
	}
	assert.Regexp(t, `(?m)^\d+\s+upgrade\s+kv\s.*rolled back \(canary 50% for 1h0m0s: rolled back: aborted by an operator after \d+s of the bake \(canary: 0 handled.*dead-lettered, p99 0s\)\)$`, p.ok(t, "history"))
}

// Flags that do not go together are refused before the core is asked.
func TestCanaryFlagsThatDoNotGoTogether(t *testing.T) {
	for _, args := range [][]string{
		{"--canary", "10%"},
		{"--bake", "10s"},
		{"--canary", "10%", "--bake", "10s", "--dry-run"},
		{"--promote", "--abort"},
		{"--promote", "--binary", "/x"},
		{"--p99-ratio", "2"},
		{"--canary", "150%", "--bake", "1s"},
		{"--canary", "abc%", "--bake", "1s"},
		{"--canary", "10%", "--bake", "1s", "--failure-rate-increase", "lots"},
	} {
		r := graft(t, "", nil, append([]string{"upgrade", "kv", "--socket", "/nonexistent/graft.sock"}, args...)...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "--", "%v names the flags", args)
	}
}
