package upgrade_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
	"github.com/graft-host/graft/upgrade"
)

var pluginDir string

func TestMain(m *testing.M) {
	testbin.Main(m, "graft-upgrade-plugins-", &pluginDir, append(testbin.Pkgs("./testdata/kv1", "./testdata/kv2", "../core/testdata/counter"),
		testbin.Variant("kv2-error", "./testdata/kv2", "-X main.fault=error"),
		testbin.Variant("kv2-panic", "./testdata/kv2", "-X main.fault=panic"),
		testbin.Variant("kv2-hang", "./testdata/kv2", "-X main.fault=hang"),
		testbin.Variant("kv2-marked", "./testdata/kv2", "-X main.fault=marked"),
		testbin.Variant("kv2-marked-getfail", "./testdata/kv2", "-X main.fault=marked -X main.failKind=get"),
		testbin.Variant("kv2-badfail", "./testdata/kv2", "-X main.failKind=bad"),
		testbin.Variant("kv2-nodown", "./testdata/kv2", "-X main.noDown=1"),
		testbin.Variant("kv3", "./testdata/kv2", "-X main.code=3.0.0"),
		testbin.Variant("kv2-flaky", "./testdata/kv2", "-X main.fault=flaky"),
		// a plugin whose main fails before it serves
		testbin.Variant("kv-crash", "../dynamic/testdata/crashstart", "-X main.mode=exit1"),
	)...)
}

func bin(name string) string { return filepath.Join(pluginDir, name) }

func testLogger(t testing.TB) *slog.Logger {
	if t == nil {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return testbin.Logger(t)
}

// install copies a built plugin to dst (the "source" path the config names
// and the watcher watches), replacing it by rename as a build would.
func install(t testing.TB, name, dst string) {
	t.Helper()
	src, err := os.Open(bin(name))
	require.NoError(t, err)
	defer src.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, src)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.NoError(t, os.Rename(tmp, dst))
}

// system is a running core with the kv behaviour and an upgrade manager.
type system struct {
	dir    string // store and sources
	source string // the kv binary the config names
	core   *core.Core
	mgr    *upgrade.Manager
	actors []string
}

func kvConfig(t testing.TB, dir string, actors int) (core.Config, []string) {
	cfg := core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			return pebblestore.Open(filepath.Join(dir, "store"), opts)
		},
		Behaviours: map[string]core.BehaviourConfig{"kv": {Binary: filepath.Join(dir, "kv"), HandleTimeout: 5 * time.Second}},
		Logger:     testLogger(t),
		SocketDir:  os.TempDir(),
	}
	var names []string
	for i := 0; i < actors; i++ {
		name := fmt.Sprintf("kv%d", i)
		names = append(names, name)
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: name, Behaviour: "kv"})
	}
	return cfg, names
}

// boot starts (or restarts) a system in dir; the source must exist. It
// returns once the manager's start-up work (finishing an interrupted
// upgrade, picking up a source changed while the core was down) is over,
// so a source the test changes afterwards is seen only by the watcher or
// the test's own Upgrade.
func boot(t testing.TB, dir string, actors int, opts upgrade.Options) *system {
	return bootWith(t, dir, actors, opts, nil)
}

// bootWith is boot with the config changed by edit (if not nil) before
// the manager prepares it.
func bootWith(t testing.TB, dir string, actors int, opts upgrade.Options, edit func(*core.Config)) *system {
	return bootSystem(t, dir, actors, opts, edit, true)
}

// bootSystem is bootWith, waiting for the manager's start-up work (an
// interrupted upgrade finished) only if wait: a resumed canary bakes
// until it is told what to decide.
func bootSystem(t testing.TB, dir string, actors int, opts upgrade.Options, edit func(*core.Config), wait bool) *system {
	cfg, names := kvConfig(t, dir, actors)
	if edit != nil {
		edit(&cfg)
	}
	source := cfg.Behaviours["kv"].Binary
	opts.Dir = filepath.Join(dir, "store", "modules")
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	mgr, err := upgrade.New(opts)
	require.NoError(t, err)
	require.NoError(t, mgr.Prepare(&cfg))
	c, err := core.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	mgr.Attach(context.Background(), c.Upgrades())
	s := &system{dir: dir, source: source, core: c, mgr: mgr, actors: names}
	if tt, ok := t.(*testing.T); ok {
		tt.Cleanup(s.stop)
	}
	if !wait {
		return s
	}
	attached := make(chan struct{})
	go func() { mgr.WaitAttached(); close(attached) }()
	select {
	case <-attached:
	case <-ctx.Done():
		require.FailNow(t, "the manager's start-up work did not end within 60 s")
	}
	return s
}

func (s *system) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = s.core.Shutdown(ctx) // a test ends either way; its own checks ran before
}

// kvState is what either version's state says, read from the store.
type kvState struct {
	Schema  uint32
	Module  string
	Count   int
	Applied []string
}

func (s *system) state(t testing.TB, actor string) kvState {
	t.Helper()
	st, err := s.core.Store().State(context.Background(), actor)
	require.NoError(t, err)
	out := kvState{Schema: st.Schema, Module: st.Module}
	if len(st.Data) == 0 {
		return out
	}
	var raw struct {
		N       int      `json:"n"`
		Count   int      `json:"count"`
		Applied []string `json:"applied"`
	}
	require.NoError(t, json.Unmarshal(st.Data, &raw))
	out.Count, out.Applied = raw.N+raw.Count, raw.Applied
	return out
}

func (s *system) drained(actors ...string) bool {
	for _, a := range actors {
		st, err := s.core.Store().Stats(a)
		if err != nil || st.Depth > 0 {
			return false
		}
	}
	return true
}

func (s *system) history(t testing.TB) []mailbox.UpgradeRecord {
	h, err := s.core.Store().ListHistory(context.Background())
	require.NoError(t, err)
	return h
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, within, what, cond)
}
