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
	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/core/control"
)

// kvConfig is a core with the kv behaviour (v1: schema 1, replies "v1:" and
// its count) and actors a and s, with a 2 KiB state limit.
func kvConfig() string {
	return fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
limits: {max_attempts: 2, max_state_size: 2KiB}
behaviours:
  kv: {binary: %s}
actors:
  - {name: a, behaviour: kv}
  - {name: s, behaviour: kv}
`, plugin("kv1"))
}

func (p *coreProc) state(t *testing.T, actor string) control.StateResponse {
	t.Helper()
	var st control.StateResponse
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "state", actor, "--json")), &st))
	return st
}

func writeStateFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// Show, replace and reset a state through the real CLI: the handler
// continues from the replaced state, Init runs again after the reset, and
// the history shows both.
func TestStateShowReplaceReset(t *testing.T) {
	p := startGraft(t, kvConfig(), []string{"a"})
	for _, m := range []string{"x1", "x2", "x3"} {
		p.ok(t, "call", "a", m)
	}
	st := p.state(t, "a")
	assert.Equal(t, control.StateResponse{Actor: "a", Behaviour: "kv", Module: "1.0.0", Schema: 1, Size: 34, Encoding: "json",
		Data: []byte(`{"n":3,"applied":["x1","x2","x3"]}`), Text: `{"n":3,"applied":["x1","x2","x3"]}`}, st)
	table := p.ok(t, "state", "a")
	assert.Regexp(t, `(?m)^module:\s+1\.0\.0$`, table)
	assert.Regexp(t, `(?m)^schema:\s+1$`, table)
	assert.Regexp(t, `(?m)^size:\s+34 bytes$`, table)
	assert.Contains(t, table, "\n"+`{"n":3,"applied":["x1","x2","x3"]}`+"\n")
	assert.Equal(t, `{"n":3,"applied":["x1","x2","x3"]}`, p.ok(t, "state", "a", "--raw"))

	out := p.ok(t, "state", "a", "--set", writeStateFile(t, `{"n":41,"applied":["fixed"]}`), "--yes")
	assert.Equal(t, "replaced the state of a: schema 1, 34 bytes, written by module 1.0.0 -> schema 1, 28 bytes, written by module 1.0.0 (history record 1)\n", out)
	assert.Equal(t, "v1:42", p.ok(t, "call", "a", "y"), "the handler continues from the replaced state")
	assert.Equal(t, `{"n":42,"applied":["fixed","y"]}`, p.ok(t, "state", "a", "--raw"))

	out = p.ok(t, "state", "a", "--reset", "--yes")
	assert.Contains(t, out, "reset the state of a: schema 1, 32 bytes, written by module 1.0.0 -> no state; its next message runs Init (history record 2)")
	st = p.state(t, "a")
	assert.True(t, st.Empty)
	assert.Equal(t, "none", st.Encoding)
	assert.Contains(t, p.ok(t, "state", "a"), "none (the actor's next message runs Init)")
	assert.Equal(t, "v1:1", p.ok(t, "call", "a", "z"), "Init ran again")

	var hist []control.UpgradeRecord
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "history", "--json")), &hist))
	require.Len(t, hist, 2)
	for i, step := range []string{"replace state", "reset state"} {
		h := hist[i]
		assert.Equal(t, "repair", h.Kind)
		assert.Equal(t, "kv", h.Behaviour)
		assert.Equal(t, "completed", h.Outcome)
		assert.Equal(t, 1, h.Actors)
		require.Len(t, h.Steps, 1)
		assert.Equal(t, "a", h.Steps[0].Actor)
		assert.Equal(t, step, h.Steps[0].Step)
	}
	assert.Equal(t, "schema 1, 34 bytes, module 1.0.0", hist[0].From)
	assert.Equal(t, "schema 1, 28 bytes, module 1.0.0", hist[0].To)
	assert.Equal(t, "empty (Init runs next)", hist[1].To)
	assert.Regexp(t, `(?m)^2\s+repair\s+kv\s+schema 1, 32 bytes`, p.ok(t, "history"))

	// --set - reads stdin (with --yes: stdin cannot also answer).
	r := graft(t, `{"n":7,"applied":[]}`, nil, "state", "s", "--set", "-", "--yes", "--config", p.config)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "v1:8", p.ok(t, "call", "s", "q"))

	// A state that is not UTF-8 is shown as base64, and kept byte for byte.
	r = graft(t, "\xff\x00\x01", nil, "state", "s", "--set", "-", "--schema", "1", "--yes", "--config", p.config)
	require.Equal(t, 0, r.code, r.stderr)
	st = p.state(t, "s")
	assert.Equal(t, "binary", st.Encoding)
	assert.Equal(t, []byte{0xff, 0, 1}, st.Data)
	assert.Empty(t, st.Text)
	assert.Contains(t, p.ok(t, "state", "s"), "\n/wAB\n")
	assert.Equal(t, "\xff\x00\x01", p.ok(t, "state", "s", "--raw"))
}

// A repair asks first: it refuses without a terminal unless --yes, and on
// a terminal it goes ahead only on "y".
func TestStateRepairAsksFirst(t *testing.T) {
	p := startGraft(t, kvConfig(), []string{"a"})
	p.ok(t, "call", "a", "x")
	r := graft(t, "y\n", nil, "state", "a", "--reset", "--config", p.config)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "stdin is not a terminal: add --yes to go ahead")
	r = graft(t, `{"n":5}`, nil, "state", "a", "--set", "-", "--config", p.config)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--set - reads the new state from stdin, so it cannot ask for confirmation there: add --yes")
	assert.Equal(t, `{"n":1,"applied":["x"]}`, p.ok(t, "state", "a", "--raw"), "nothing changed")

	r, ok := graftOnTerminal(t, "n\n", "state", "a", "--reset", "--config", p.config)
	if !ok {
		t.Skip("no pseudo-terminal on this machine")
	}
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "Reset the state of actor a (kv): schema 1, 23 bytes, written by module 1.0.0\n  is cleared, and its next message runs Init.")
	assert.Contains(t, r.stderr, "Go ahead? [y/N] ")
	assert.Contains(t, r.stderr, `not confirmed (answer "n"): the state of actor a is unchanged`)
	assert.Equal(t, `{"n":1,"applied":["x"]}`, p.ok(t, "state", "a", "--raw"))

	r, _ = graftOnTerminal(t, "y\n", "state", "a", "--set", writeStateFile(t, `{"n":9,"applied":[]}`), "--config", p.config)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "by 20 bytes from ")
	assert.Contains(t, r.stdout, "replaced the state of a")
	assert.Equal(t, "v1:10", p.ok(t, "call", "a", "w"))
}

// Bad repairs change nothing and say what is wrong.
func TestStateRepairRefusals(t *testing.T) {
	p := startGraft(t, kvConfig(), []string{"a"})
	p.ok(t, "call", "a", "x")
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"schema it cannot read", []string{"--set", writeStateFile(t, `{"n":5}`), "--schema", "5", "--yes"}, exitError,
			"module kv 1.0.0 of actor \"a\" reads schema 1 (and migrates up from []), not schema 5"},
		{"over the state limit", []string{"--set", writeStateFile(t, strings.Repeat("s", 3000)), "--yes"}, exitError,
			"the new state is 3000 bytes, over the 2048-byte state limit (limits.max_state_size)"},
		{"far over the state limit", []string{"--set", writeStateFile(t, strings.Repeat("s", 100_000)), "--yes"}, exitError,
			"the new state of actor \"a\" is over the 2048-byte state limit (limits.max_state_size): nothing was changed"},
		{"empty", []string{"--set", writeStateFile(t, ""), "--yes"}, exitError, "the new state is empty: to clear it so that Init runs again, reset it instead"},
		{"no such file", []string{"--set", "/nonexistent/state.json", "--yes"}, exitError, "read the new state: open /nonexistent/state.json: no such file or directory"},
		{"schema without set", []string{"--schema", "1"}, exitUsage, "--schema goes with --set"},
		{"set and reset", []string{"--set", "f", "--reset"}, exitUsage, "--set and --reset do not go together"},
	} {
		r := graft(t, "", nil, append([]string{"state", "a", "--config", p.config}, c.args...)...)
		assert.Equal(t, c.code, r.code, "%s: %s", c.name, r.stderr)
		assert.Contains(t, r.stderr, c.want, c.name)
	}
	r := graft(t, "", nil, "state", "nobody", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, `unknown actor`)
	assert.Equal(t, `{"n":1,"applied":["x"]}`, p.ok(t, "state", "a", "--raw"), "nothing changed")
	assert.Equal(t, "no upgrades yet\n", p.ok(t, "history"), "refused repairs are not recorded")
}

// graftOnTerminal runs graft with a pseudo-terminal as stdin, typing
// answer into it; ok is false when the machine has no pseudo-terminals.
func graftOnTerminal(t *testing.T, answer string, args ...string) (result, bool) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return result{}, false
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return result{}, false
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return result{}, false
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return result{}, false
	}
	defer tty.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, graftBin(), args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &errOut
	require.NoError(t, cmd.Start())
	_, err = master.WriteString(answer) // the terminal keeps the line until graft reads it
	require.NoError(t, err)
	err = cmd.Wait()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "graft %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}, true
}
