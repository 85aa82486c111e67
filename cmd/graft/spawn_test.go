package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/internal/testbin"
)

// spawnConfig is a core with the recorder and kv behaviours and one
// configured actor, a.
func spawnConfig() string {
	return fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
supervision: {backoff_min: 50ms}
behaviours:
  recorder: {binary: %s, call_timeout: 10s}
  kv: {binary: %s}
actors:
  - {name: a, behaviour: recorder}
`, plugin("recorder"), plugin("kv1"))
}

// waitApplied waits until the recorder actor's committed state (its list
// of applied payloads) holds payload.
func (p *coreProc) waitApplied(t *testing.T, actor, payload string) {
	t.Helper()
	testbin.WaitFor(t, 30*time.Second, actor+" applied "+payload, func() bool {
		r := graft(t, "", nil, "state", actor, "--raw", "--config", p.config)
		return r.code == 0 && strings.Contains(r.stdout, `"`+payload+`"`)
	})
}

// Spawn creates an actor once: again it is a no-op, with another behaviour
// it fails naming both, and the spawned actor runs its --init message and
// shows in status with its origin.
func TestSpawnCreatesOnce(t *testing.T) {
	p := startGraft(t, spawnConfig(), []string{"a"})
	assert.Equal(t, "spawned order-7 (behaviour recorder)\n", p.ok(t, "spawn", "order-7", "--behaviour", "recorder", "--init", "hello"))
	assert.Equal(t, "order-7 already exists with behaviour recorder: nothing changed; --init was not queued\n",
		p.ok(t, "spawn", "order-7", "-b", "recorder", "--init", "again"))
	var sr api.SpawnResponse
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "spawn", "order-7", "-b", "recorder", "--json")), &sr))
	assert.Equal(t, api.SpawnResponse{Actor: "order-7", Behaviour: "recorder", Created: false}, sr)

	r := graft(t, "", nil, "spawn", "order-7", "--behaviour", "kv", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, `spawn actor "order-7" with behaviour "kv": it exists with behaviour "recorder"`)
	r = graft(t, "", nil, "spawn", "order-8", "--behaviour", "nosuch", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, `unknown behaviour "nosuch"`)
	r = graft(t, "", nil, "spawn", "order-8", "--config", p.config)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "needs --behaviour B")

	p.waitApplied(t, "order-7", "hello")
	assert.Equal(t, `{"applied":["hello"]}`, p.ok(t, "state", "order-7", "--raw"), "the repeated spawns queued nothing")
	testbin.WaitFor(t, 30*time.Second, "order-7 running", func() bool { return p.status(t)["order-7"].Status == "running" })
	st := p.status(t)
	assert.Equal(t, "spawn", st["order-7"].Origin)
	assert.Equal(t, "config", st["a"].Origin)
	assert.NotContains(t, st, "order-8", "refused spawns created nothing")
	table := p.ok(t, "status")
	assert.Contains(t, table, "ORIGIN")
	assert.Regexp(t, `(?m)^order-7\s+recorder\s.*\sspawn$`, table)
	assert.Regexp(t, `(?m)^a\s+recorder\s.*\sconfig$`, table)
}

// Destroy removes an actor for good, once confirmed: without --yes and
// without a terminal it refuses; on a terminal only the actor's name or
// "yes" confirms. Afterwards status does not list it and a send to it is
// refused as to an unknown actor.
func TestDestroyAsksThenRemovesForGood(t *testing.T) {
	p := startGraft(t, spawnConfig(), []string{"a"})
	p.ok(t, "spawn", "x", "--behaviour", "recorder", "--init", "one")
	p.ok(t, "spawn", "y", "--behaviour", "recorder")
	p.waitApplied(t, "x", "one")
	p.ok(t, "send", "x", "later", "--after", "1h")

	r := graft(t, "yes\n", nil, "destroy", "x", "--config", p.config)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "graft destroy x removes the actor and its data for good and asks for confirmation, but stdin is not a terminal: add --yes to go ahead")
	assert.Contains(t, p.status(t), "x", "nothing was destroyed")

	if r, ok := graftOnTerminal(t, "no\n", "destroy", "x", "--config", p.config); ok {
		assert.Equal(t, exitError, r.code)
		assert.Contains(t, r.stderr, "Destroy actor x (recorder; schema 1, 19 bytes, written by module 1.0.0; 1 pending timer(s)) for good?")
		assert.Contains(t, r.stderr, "Type the actor's name, or yes, to confirm: ")
		assert.Contains(t, r.stderr, `not confirmed (answer "no"): actor x is kept`)
		assert.Contains(t, p.status(t), "x")

		r, _ = graftOnTerminal(t, "y\n", "destroy", "y", "--config", p.config)
		require.Equal(t, 0, r.code, "typing the actor's name confirms: %s", r.stderr)
		assert.Equal(t, "destroyed y: removed for good, with its mailbox, state and timers\n", r.stdout)
		assert.NotContains(t, p.status(t), "y")
	} else {
		t.Log("no pseudo-terminal on this machine: the question itself is not tested")
		p.ok(t, "destroy", "y", "--yes")
	}

	assert.Equal(t, "destroyed x: removed for good, with its mailbox, state and timers\n", p.ok(t, "destroy", "x", "--yes"))
	assert.NotContains(t, p.status(t), "x")
	for _, args := range [][]string{{"send", "x", "hello"}, {"state", "x"}, {"timers", "x"}, {"destroy", "x", "--yes"}} {
		r := graft(t, "", nil, append(args, "--config", p.config)...)
		assert.Equal(t, exitError, r.code, "graft %v", args)
		assert.Contains(t, r.stderr, `unknown actor`, "graft %v", args)
	}
	// stop keeps an actor's data.
	p.ok(t, "send", "a", "kept")
	p.waitApplied(t, "a", "kept")
	p.ok(t, "stop", "a")
	assert.Contains(t, p.ok(t, "state", "a", "--raw"), `"kept"`)
}

// send --after sets a durable timer: timers lists it, and one due in a
// second is delivered as an ordinary message; --at in the past is due at
// once; the flags that do not go together are usage errors.
func TestSendAfterAndTimers(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	out := p.ok(t, "send", "a", "later", "--after", "1h")
	m := regexp.MustCompile(`^scheduled for a as timer (\S+), due \S+ \(in (59m5\ds|1h)\)\n$`).FindStringSubmatch(out)
	require.NotNil(t, m, "send --after prints the timer id: %q", out)
	id := m[1]

	table := p.ok(t, "timers", "a")
	assert.Contains(t, table, "ID  ")
	for _, col := range []string{"OWNER", "TO", "DUE", "IN", "SIZE", "PAYLOAD"} {
		assert.Contains(t, table, col)
	}
	assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(id)+`\s+-\s+a\s+\d{4}-\d\d-\d\dT\S+\s+in (59m5\ds|1h)\s+5 B\s+"later"$`, table)
	var ts []api.Timer
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "timers", "a", "--json")), &ts))
	require.Len(t, ts, 1)
	assert.Equal(t, id, ts[0].ID)
	assert.Equal(t, "later", string(ts[0].Payload))
	assert.WithinDuration(t, time.Now().Add(time.Hour), ts[0].Due, time.Minute)

	p.ok(t, "send", "a", "soon", "--after", "1s")
	p.ok(t, "send", "a", "overdue", "--at", time.Now().Add(-time.Minute).Format(time.RFC3339))
	p.waitApplied(t, "a", "soon")
	p.waitApplied(t, "a", "overdue")
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "timers", "a", "--json")), &ts))
	require.Len(t, ts, 1, "fired timers are no longer pending")
	assert.Equal(t, id, ts[0].ID)
	assert.Equal(t, "b has no pending timers\n", p.ok(t, "timers", "b"))

	// With --id a retry sets no second timer and prints the same one.
	timerOf := regexp.MustCompile(`^scheduled for b as timer (\S+), due `)
	first := timerOf.FindStringSubmatch(p.ok(t, "send", "b", "once", "--after", "1h", "--id", "r1"))
	again := timerOf.FindStringSubmatch(p.ok(t, "send", "b", "once", "--after", "1h", "--id", "r1"))
	require.NotNil(t, first)
	require.NotNil(t, again)
	assert.Equal(t, first[1], again[1])
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "timers", "b", "--json")), &ts))
	require.Len(t, ts, 1, "one timer for the id")
	assert.Equal(t, first[1], ts[0].ID)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--after", "1s", "--at", "2030-01-02T15:04:05Z"}, "--after and --at do not go together"},
		{[]string{"--after", "-5s"}, "--after -5s is negative"},
		{[]string{"--at", "tomorrow"}, `--at "tomorrow" is not an RFC 3339 time`},
	} {
		r := graft(t, "", nil, append([]string{"send", "a", "x", "--config", p.config}, c.args...)...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", c.args, r.stderr)
		assert.Contains(t, r.stderr, c.want, c.args)
	}
	r := graft(t, "", nil, "timers", "nobody", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "unknown actor")
	r = graft(t, "", nil, "send", "nobody", "x", "--after", "1s", "--config", p.config)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "unknown actor")
}
