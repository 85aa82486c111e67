package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

func TestSendThenStatusShowsProcessed(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	out := p.ok(t, "send", "a", "hello")
	assert.Contains(t, out, "sent to a as message 1")
	testbin.WaitFor(t, 30*time.Second, "a processed the message", func() bool {
		return p.status(t)["a"].Processed == 1
	})
	st := p.status(t)["a"]
	assert.Equal(t, "recorder", st.Behaviour)
	assert.Equal(t, "1.0.0", st.Module)
	assert.Equal(t, "running", st.Status)
	assert.Equal(t, uint64(0), st.Depth)
	assert.Positive(t, st.UptimeSeconds)

	table := p.ok(t, "status")
	for _, col := range []string{"ACTOR", "BEHAVIOUR", "MODULE", "SCHEMA", "STATUS", "DEPTH", "IN FLIGHT", "PROCESSED", "RESTARTS", "DEAD", "LAST EXIT", "UPTIME"} {
		assert.Contains(t, table, col)
	}
	assert.Regexp(t, `(?m)^a\s+recorder\s+1\.0\.0\s+1\s+running\s+0\s+0\s+1\s`, table)
}

func TestCallWithReusedIDAppliesOnce(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	first := p.ok(t, "call", "b", "incr", "--id", "req-1", "--timeout", "20s")
	assert.Equal(t, "ok:incr", first)
	second := p.ok(t, "call", "b", "incr", "--id", "req-1")
	assert.Equal(t, first, second, "the retry gets the stored reply")
	third := p.ok(t, "call", "b", "again")
	assert.Equal(t, "ok:again", third)
	st := p.status(t)["b"]
	assert.Equal(t, uint64(2), st.Processed, "the reused id was applied once")

	// PAYLOAD - reads stdin.
	r := graft(t, "from stdin", nil, "call", "a", "-", "--config", p.config)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "ok:from stdin", r.stdout)
}

func TestEveryJSONOutputParses(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	p.ok(t, "send", "a", "error", "--id", "poison")
	testbin.WaitFor(t, 30*time.Second, "the poison message is dead-lettered", func() bool {
		return p.status(t)["a"].DeadLetters == 1
	})
	cmds := [][]string{
		{"status", "--json"},
		{"send", "a", "x", "--json"},
		{"call", "a", "y", "--json"},
		{"deadletters", "a", "--json"},
		{"history", "--json"},
		{"stop", "b", "--json"},
		{"start", "b", "--json"},
		{"send", "b", "later", "--after", "1h", "--json"},
		{"timers", "b", "--json"},
		{"spawn", "c", "--behaviour", "recorder", "--json"},
		{"destroy", "c", "--yes", "--json"},
		{"deadletters", "a", "--retry", "poison", "--json"},
	}
	for _, args := range cmds {
		out := p.ok(t, args...)
		assert.True(t, json.Valid([]byte(out)), "graft %v --json prints JSON: %q", args, out)
	}
	var dls []control.DeadLetter
	testbin.WaitFor(t, 30*time.Second, "the retried message is dead-lettered again", func() bool {
		require.NoError(t, json.Unmarshal([]byte(p.ok(t, "deadletters", "a", "--json")), &dls))
		return len(dls) == 1 && dls[0].Seq > 1
	})
	assert.Equal(t, "poison", dls[0].ID)
	assert.Equal(t, "error", string(dls[0].Payload))
	human := p.ok(t, "deadletters", "a")
	assert.Contains(t, human, "refused on request")
	out := p.ok(t, "deadletters", "a", "--all")
	assert.Contains(t, out, "requeued dead letter")

	var hist []any
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "history", "--json")), &hist))
	assert.Empty(t, hist)
	assert.Contains(t, p.ok(t, "history"), "no upgrades yet")
}

func TestStopStartDestroy(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	assert.Equal(t, "stopped b\n", p.ok(t, "stop", "b"))
	assert.Equal(t, "stopped", p.status(t)["b"].Status)
	p.ok(t, "send", "b", "while-stopped")
	assert.Equal(t, uint64(1), p.status(t)["b"].Depth, "messages queue while stopped")
	p.ok(t, "start", "b")
	testbin.WaitFor(t, 30*time.Second, "b drains after start", func() bool {
		s := p.status(t)["b"]
		return s.Status == "running" && s.Depth == 0
	})
	r := graft(t, "", nil, "destroy", "a", "--yes", "--config", p.config)
	assert.Equal(t, 1, r.code, "b requires a: a is not destroyed under it")
	assert.Contains(t, r.stderr, "b")
	p.ok(t, "destroy", "b", "--yes")
	p.ok(t, "destroy", "a", "--yes")
	st := p.status(t)
	assert.NotContains(t, st, "a", "destroyed for good")
	assert.NotContains(t, st, "b", "destroyed for good")

	r = graft(t, "", nil, "stop", "nobody", "--config", p.config)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "nobody")
}

func TestStatusAnswersWhileStartHangs(t *testing.T) {
	body := strings.Replace(defaultConfig(), "actors:\n",
		fmt.Sprintf("  hang: {binary: %s, start_timeout: 1m}\nactors:\n  - {name: stuck, behaviour: hang}\n", plugin("hangstart")), 1)
	p := startGraft(t, body, []string{"a", "b"})
	require.Equal(t, "starting", p.status(t)["stuck"].Status)

	cl := control.NewClient(p.socket)
	defer cl.Close()
	// Each call's 10 s is a guard well inside the start's minute, not a
	// figure to meet: a status that waited for the start would miss it, and
	// one that answers says the actor is still starting.
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := cl.Status(ctx)
		cancel()
		require.NoError(t, err, "status answers while a plugin start hangs")
		for _, a := range st.Actors {
			if a.Name == "stuck" {
				require.Equal(t, "starting", a.Status)
			}
		}
	}
	assert.Equal(t, "ok:still", p.ok(t, "call", "a", "still"), "other actors serve meanwhile")
}

func TestSecondCoreRefusedAndSocketOwnerOnly(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	fi, err := os.Stat(p.socket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	r := graft(t, "", nil, "run", "--config", p.config)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "another graft core is running on "+p.socket)
	p.ok(t, "status") // the first core is unharmed
}

func TestStaleSocketReplacedAfterKill(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	p.ok(t, "send", "a", "before-crash")
	require.NoError(t, p.cmd.Process.Kill()) // kill -9: the socket file stays behind
	<-p.exited
	_, err := os.Stat(p.socket)
	require.NoError(t, err, "the crashed core left its socket")
	testbin.WaitFor(t, 10*time.Second, "the crashed core's plugins exit", func() bool {
		return len(testbin.Running(plugin("recorder"))) == 0
	})

	// A new core on the same config takes the stale socket over.
	p2 := startGraftAt(t, p.config, []string{"a"})
	testbin.WaitFor(t, 30*time.Second, "the queued message is processed after restart", func() bool {
		return p2.status(t)["a"].Depth == 0
	})
}

func TestNoCoreRunningSaysWhatToDo(t *testing.T) {
	sock := filepath.Join(testbin.ShortDir(t), "graft.sock")
	r := graft(t, "", nil, "status", "--socket", sock)
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "graft: no core is running on "+sock+": start one with `graft run --config FILE`\n", r.stderr)

	r = graft(t, "", []string{"GRAFT_SOCKET=" + sock}, "send", "a", "x")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no core is running on "+sock)

	r = graft(t, "", []string{"GRAFT_SOCKET="}, "status")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "give --config FILE or --socket PATH, set GRAFT_SOCKET or GRAFT_CONFIG")
}

func TestGraftSocketEnv(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	r := graft(t, "", []string{"GRAFT_SOCKET=" + p.socket}, "call", "a", "via-env")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "ok:via-env", r.stdout)
	r = graft(t, "", nil, "call", "a", "via-flag", "--socket", p.socket)
	require.Equal(t, 0, r.code, r.stderr)
}

// The upgrade commands reach the upgrade manager: the running bytes are not
// an upgrade, and there is nothing to roll back to yet; each says so.
func TestUpgradeCommandsExplainRefusals(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	for args, want := range map[string]string{
		"upgrade recorder": "same binary as the running version",
		"upgrade recorder --binary " + plugin("recorder"): "same binary as the running version",
		"rollback recorder": "no previous version to roll back to",
		"upgrade nosuch":    "unknown behaviour",
	} {
		r := graft(t, "", nil, append(strings.Fields(args), "--config", p.config)...)
		assert.Equal(t, 1, r.code, args)
		assert.Contains(t, r.stderr, want, args)
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	body := `store: {path: ./data, durability: sometimes}
behaviours:
  recorder: {binary: ./missing-plugin}
actors:
  - {name: a, behaviour: recorder, requires: [b]}
  - {name: b, behaviour: recorder, requires: [a]}
  - {name: a, behaviour: nosuch}
`
	path := writeConfig(t, body)
	r := graft(t, "", nil, "run", "--config", path)
	assert.Equal(t, 1, r.code)
	for _, want := range []string{
		"graft.yaml:1: store.durability:",
		"graft.yaml:3: behaviours.recorder.binary:",
		"does not exist",
		"graft.yaml:5: actors[0].requires: requirement cycle a -> b -> a",
		"graft.yaml:7: actors[2].name: duplicate actor \"a\"",
		"graft.yaml:7: actors[2].behaviour: unknown behaviour \"nosuch\"",
	} {
		assert.Contains(t, r.stderr, want)
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(path), "data"))
	assert.True(t, os.IsNotExist(err), "nothing was started: no store created")
	_, err = os.Stat(filepath.Join(filepath.Dir(path), "run"))
	assert.True(t, os.IsNotExist(err), "no socket folder created")

	r = graft(t, "", nil, "run")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "needs --config FILE")
}

func TestMetricsEndpointCountersMove(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"}, "--metrics-addr", "127.0.0.1:0")
	line := p.logLine("serving metrics")
	require.NotNil(t, line, "the metrics address is logged")
	url := "http://" + line["addr"].(string) + "/metrics"

	before := scrape(t, url)
	assert.Contains(t, before, `graft_mailbox_depth{actor="a",behaviour="recorder"} 0`)
	assert.Contains(t, before, `graft_actor_up{actor="b",behaviour="recorder"} 1`)
	assert.GreaterOrEqual(t, sample(before, `graft_module_starts_total{behaviour="recorder"}`), 2.0)

	for i := 0; i < 3; i++ {
		p.ok(t, "call", "a", "m"+strconv.Itoa(i))
	}
	p.ok(t, "send", "a", "error")
	testbin.WaitFor(t, 30*time.Second, "the failing message is dead-lettered", func() bool {
		return p.status(t)["a"].DeadLetters == 1
	})
	after := scrape(t, url)
	assert.Equal(t, 3.0, sample(after, `graft_messages_processed_total{actor="a",behaviour="recorder"}`))
	assert.Equal(t, 2.0, sample(after, `graft_messages_failed_total{actor="a",behaviour="recorder"}`))
	assert.Equal(t, 1.0, sample(after, `graft_dead_lettered_total{actor="a",behaviour="recorder"}`))
	assert.Equal(t, 1.0, sample(after, `graft_dead_letters{actor="a",behaviour="recorder"}`))
	assert.GreaterOrEqual(t, sample(after, `graft_batch_duration_seconds_count{behaviour="recorder"}`), 3.0)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// sample returns the value of the series named exactly (name and labels),
// or -1 if it is absent.
func sample(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func TestEveryCommandHasAnExample(t *testing.T) {
	for _, name := range []string{"run", "status", "send", "call", "spawn", "stop", "start", "destroy", "timers", "deadletters", "state", "history", "upgrade", "rollback"} {
		r := graft(t, "", nil, name, "--help")
		require.Equal(t, 0, r.code, name)
		assert.Contains(t, r.stdout, "Examples:\n  graft "+name, "graft %s --help shows an example", name)
	}
	r := graft(t, "", nil, "send", "onlyactor", "--socket", "/nonexistent")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "takes ACTOR and PAYLOAD")
}

// TestStatusWatchRedrawsUntilInterrupted: --watch --json prints one JSON
// document per redraw and exits cleanly on SIGINT.
func TestStatusWatchRedrawsUntilInterrupted(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, graftBin(), "status", "--watch", "--json", "--interval", "20ms", "--config", p.config)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	for i := 0; i < 3; i++ {
		require.True(t, sc.Scan(), "redraw %d", i)
		var st control.Status
		require.NoError(t, json.Unmarshal(sc.Bytes(), &st), "one JSON document per line")
		require.NotEmpty(t, st.Actors)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_, _ = io.Copy(io.Discard, out) // until the process closes stdout
	require.NoError(t, cmd.Wait(), "exits 0 on SIGINT")
}
