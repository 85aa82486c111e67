// Package pingpongtest_test runs the ping-pong example end to end in process: a
// real core and upgrade manager with a fresh store, the real ping and pong
// plugin binaries, several balls in flight, pong rebuilt as v2 into the
// watched place mid-stream (the watcher, not an API call, starts the
// upgrade), then rolled back, and every bounce accounted for.
package pingpongtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
	"github.com/graft-host/graft/upgrade"
)

// Generous deadlines: the test waits on conditions, and a loaded 2-core
// machine running -race may be slow, never wrong.
const (
	waitLong  = 2 * time.Minute
	waitShort = 30 * time.Second
)

// balls is how many balls each ping actor keeps in flight.
const balls = 3

// pingState mirrors the JSON of ping's state (examples/pingpong/ping).
type pingState struct {
	Balls map[string]struct {
		Sent int    `json:"sent"`
		Got  int    `json:"got"`
		From string `json:"from"`
	} `json:"balls"`
	Pongs      int            `json:"pongs"`
	ByTag      map[string]int `json:"by_tag"`
	Duplicated int            `json:"duplicated"`
	Lost       int            `json:"lost"`
	Stopped    bool           `json:"stopped"`
}

// pongState is what either pong version's state says, with the schema and
// module version the core stored it under.
type pongState struct {
	Schema  uint32
	Module  string
	Count   int    `json:"count"`
	LastSeq uint64 `json:"last_seq"`
}

// example is a running core with the ping-pong config and a watching
// upgrade manager.
type example struct {
	plugins string   // built binaries: ping, pong-v1, pong-v2
	bin     string   // the watched folder the config names (like examples/pingpong/bin)
	pings   []string // the ping actors
	core    *core.Core
	mgr     *upgrade.Manager
}

func TestPongUpgradedMidStreamLosesNothing(t *testing.T) {
	ex := start(t)
	ctx := ctxFor(t, 5*time.Minute)
	for _, p := range ex.pings {
		_, err := ex.core.Send(ctx, p, fmt.Appendf(nil, "start %d", balls), core.SendOptions{ID: "start-" + p})
		require.NoError(t, err)
	}
	ex.waitBounces(t, 20, "the exchange to run on pong v1")
	before := ex.pong(t)
	assert.EqualValues(t, 1, before.Schema)
	assert.Equal(t, "1.0.0", before.Module)
	assert.Positive(t, before.Count)

	// Rebuild pong as v2 into the watched place while the balls fly: the
	// watcher notices and upgrades.
	ex.install(t, "pong-v2", "pong")
	up := ex.waitHistory(t, 1)
	assert.Equal(t, "upgrade", up.Kind)
	assert.Contains(t, up.From, "1.0.0")
	assert.Contains(t, up.To, "2.0.0")
	t.Logf("upgrade to v2 took %s with the exchange running", up.Ended.Sub(up.Started))
	after := ex.pong(t)
	assert.EqualValues(t, 2, after.Schema, "pong's state was migrated to schema 2")
	assert.Equal(t, "2.0.0", after.Module)
	assert.GreaterOrEqual(t, after.Count, before.Count, "pong's count carried over")
	ex.waitServedBy(t, "pong/v2", "pong")
	assert.Positive(t, ex.pong(t).LastSeq, "v2 records the last sequence seen")

	// Roll back, still mid-stream: v2's down-migration takes the state
	// back to schema 1 and v1 answers again.
	back, err := ex.mgr.Rollback(ctx, "pong")
	require.NoError(t, err)
	assert.Equal(t, "rollback", back.Kind)
	assert.Equal(t, "completed", back.Outcome)
	rolled := ex.pong(t)
	assert.EqualValues(t, 1, rolled.Schema, "pong's state is back at schema 1")
	assert.Equal(t, "1.0.0", rolled.Module)
	assert.GreaterOrEqual(t, rolled.Count, after.Count, "pong's count carried back")
	ex.waitServedBy(t, "pong", "pong/v2")

	// Stop, let every ball land, and account for every bounce.
	for _, p := range ex.pings {
		_, err := ex.core.Send(ctx, p, []byte("stop"), core.SendOptions{ID: "stop-" + p})
		require.NoError(t, err)
	}
	waitFor(t, waitLong, "every ball to land", func() bool {
		for _, p := range ex.pings {
			s := ex.ping(t, p)
			if !s.Stopped {
				return false
			}
			for _, b := range s.Balls {
				if b.Sent != b.Got {
					return false
				}
			}
		}
		return ex.drained(append([]string{"pong"}, ex.pings...)...)
	})
	sent := 0
	for _, p := range ex.pings {
		s := ex.ping(t, p)
		require.Len(t, s.Balls, balls, "%s: its balls", p)
		assert.Zero(t, s.Duplicated, "%s: duplicated bounces", p)
		assert.Zero(t, s.Lost, "%s: lost bounces", p)
		got, tagged := 0, 0
		for _, b := range s.Balls {
			got += b.Got
		}
		for _, n := range s.ByTag {
			tagged += n
		}
		assert.Equal(t, got, s.Pongs, "%s: one reply per bounce", p)
		assert.Equal(t, s.Pongs, tagged, "%s: every reply tagged", p)
		assert.Positive(t, s.ByTag["pong"], "%s: replies from v1", p)
		assert.Positive(t, s.ByTag["pong/v2"], "%s: replies from v2", p)
		sent += got
		t.Logf("%s: %d bounces, by version %v", p, s.Pongs, s.ByTag)
	}
	final := ex.pong(t)
	assert.Equal(t, sent, final.Count, "pong counted every bounce once, across the upgrade and the rollback")
	for _, a := range append([]string{"pong"}, ex.pings...) {
		st, err := ex.core.Store().Stats(a)
		require.NoError(t, err)
		assert.Zero(t, st.DeadLetters, "%s: dead letters", a)
	}
}

// The build script refuses an unknown version with a usage error and
// builds nothing.
func TestBuildPluginsScriptUsage(t *testing.T) {
	out, err := exec.Command("bash", "../../scripts/build-plugins.sh", "v3").CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the script fails: %v\n%s", err, out)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Contains(t, string(out), `unknown version "v3": want v1 or v2`)
	assert.Contains(t, string(out), "usage: build-plugins.sh [v1|v2]")
}

// start builds the plugins, installs ping and pong v1 in the watched folder
// and runs a core with the example's actors and a watching manager.
func start(t *testing.T) *example {
	t.Helper()
	ex := &example{plugins: t.TempDir(), bin: filepath.Join(t.TempDir(), "bin"), pings: []string{"ping1", "ping2"}}
	require.NoError(t, testbin.Build(ex.plugins, "../../examples/pingpong/ping"))
	require.NoError(t, testbin.BuildAs(ex.plugins, "pong-v1", "../../examples/pingpong/pong/v1", ""))
	require.NoError(t, testbin.BuildAs(ex.plugins, "pong-v2", "../../examples/pingpong/pong/v2", ""))
	require.NoError(t, os.Mkdir(ex.bin, 0o755))
	ex.install(t, "ping", "ping")
	ex.install(t, "pong-v1", "pong")

	store := filepath.Join(t.TempDir(), "data")
	logger := testLogger(t)
	cfg := core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			opts.Durability = mailbox.DurabilitySync
			return pebblestore.Open(store, opts)
		},
		Behaviours: map[string]core.BehaviourConfig{
			"ping": {Binary: filepath.Join(ex.bin, "ping")},
			"pong": {Binary: filepath.Join(ex.bin, "pong")},
		},
		Actors:    []core.ActorConfig{{Name: "pong", Behaviour: "pong"}},
		SocketDir: testbin.ShortDir(t),
		Logger:    logger,
	}
	for _, p := range ex.pings {
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: p, Behaviour: "ping", Requires: []string{"pong"}})
	}
	mgr, err := upgrade.New(upgrade.Options{Dir: filepath.Join(store, "modules"), Debounce: 100 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, mgr.Prepare(&cfg))
	c, err := core.New(cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(ctxFor(t, waitLong)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitShort)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	mgr.Attach(context.Background(), c.Upgrades())
	watch, stopWatching := context.WithCancel(context.Background())
	t.Cleanup(stopWatching) // runs before the shutdown above
	require.NoError(t, mgr.Watch(watch))
	ex.core, ex.mgr = c, mgr
	return ex
}

// install copies the built plugin name into the watched folder as dst,
// through a temporary file and a rename, as scripts/build-plugins.sh does.
func (ex *example) install(t *testing.T, name, dst string) {
	t.Helper()
	src, err := os.Open(filepath.Join(ex.plugins, name))
	require.NoError(t, err)
	defer src.Close()
	tmp, err := os.CreateTemp(ex.bin, "."+dst+".tmp.")
	require.NoError(t, err)
	_, err = io.Copy(tmp, src)
	require.NoError(t, err)
	require.NoError(t, tmp.Chmod(0o755))
	require.NoError(t, tmp.Close())
	require.NoError(t, os.Rename(tmp.Name(), filepath.Join(ex.bin, dst)))
}

// ping reads a ping actor's committed state.
func (ex *example) ping(t *testing.T, actor string) pingState {
	t.Helper()
	st, err := ex.core.Store().State(context.Background(), actor)
	require.NoError(t, err)
	var s pingState
	if len(st.Data) > 0 {
		require.NoError(t, json.Unmarshal(st.Data, &s), "%s's state: %s", actor, st.Data)
	}
	return s
}

// pong reads pong's committed state.
func (ex *example) pong(t *testing.T) pongState {
	t.Helper()
	st, err := ex.core.Store().State(context.Background(), "pong")
	require.NoError(t, err)
	s := pongState{Schema: st.Schema, Module: st.Module}
	if len(st.Data) > 0 {
		require.NoError(t, json.Unmarshal(st.Data, &s), "pong's state: %s", st.Data)
	}
	return s
}

// bounces is, per ping actor and ball, the last bounce received.
func (ex *example) bounces(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, p := range ex.pings {
		for name, b := range ex.ping(t, p).Balls {
			out[p+"/"+name] = b.Got
		}
	}
	return out
}

// waitBounces waits until every ball has bounced at least n more times
// than it had on entry, and every ball exists.
func (ex *example) waitBounces(t *testing.T, n int, what string) {
	t.Helper()
	from := ex.bounces(t)
	waitFor(t, waitLong, what, func() bool {
		now := ex.bounces(t)
		if len(now) != balls*len(ex.pings) {
			return false
		}
		for k, got := range now {
			if got < from[k]+n {
				return false
			}
		}
		return true
	})
}

// waitServedBy proves the exchange moved to the pong version tagged tag:
// once every ball has bounced twice more, each ping since was answered by
// the version now running, so from then on the old tag's count must not
// move while the balls keep flying.
func (ex *example) waitServedBy(t *testing.T, tag, old string) {
	t.Helper()
	ex.waitBounces(t, 2, "every ball to bounce off "+tag)
	frozen := map[string]int{}
	for _, p := range ex.pings {
		frozen[p] = ex.ping(t, p).ByTag[old]
	}
	ex.waitBounces(t, 5, "more bounces off "+tag)
	for _, p := range ex.pings {
		s := ex.ping(t, p)
		assert.Equal(t, frozen[p], s.ByTag[old], "%s: no %q replies once %q serves", p, old, tag)
		for name, b := range s.Balls {
			assert.Equal(t, tag, b.From, "%s: ball %s's last reply", p, name)
		}
	}
}

// waitHistory waits for the n-th upgrade record, which must be completed.
func (ex *example) waitHistory(t *testing.T, n int) mailbox.UpgradeRecord {
	t.Helper()
	var h []mailbox.UpgradeRecord
	waitFor(t, waitLong, fmt.Sprintf("upgrade record %d", n), func() bool {
		var err error
		h, err = ex.core.Store().ListHistory(context.Background())
		require.NoError(t, err)
		return len(h) >= n
	})
	rec := h[n-1]
	require.Equal(t, "completed", rec.Outcome, "upgrade %d: %s", n, rec.Error)
	return rec
}

// drained says whether the actors' mailboxes are empty.
func (ex *example) drained(actors ...string) bool {
	for _, a := range actors {
		st, err := ex.core.Store().Stats(a)
		if err != nil || st.Depth > 0 {
			return false
		}
	}
	return true
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, within, what, cond)
}

// testLogger sends the core's warnings and errors to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
