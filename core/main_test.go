package core_test

import (
	"context"
	"encoding/json"
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
)

// pluginDir holds the test behaviours, built once by TestMain.
var pluginDir string

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		runCoreChild()
		return
	}
	testbin.Main(m, "graft-core-plugins-", &pluginDir, testbin.Pkgs("./testdata/recorder", "./testdata/hangstart", "./testdata/counter", "./testdata/effects")...)
}

func bin(name string) string { return filepath.Join(pluginDir, name) }

// testLogger logs warnings and errors through t, to explain failures.
func testLogger(t testing.TB) *slog.Logger {
	return testbin.Logger(t)
}

// storeOpener opens a pebble store in dir.
func storeOpener(dir string, d mailbox.Durability) func(mailbox.Options) (mailbox.Store, error) {
	return func(opts mailbox.Options) (mailbox.Store, error) {
		opts.Durability = d
		return pebblestore.Open(dir, opts)
	}
}

// recorderConfig is a core with the recorder behaviour and the named actors.
func recorderConfig(t testing.TB, storeDir string, actors ...string) core.Config {
	cfg := core.Config{
		OpenStore: storeOpener(storeDir, mailbox.DurabilitySync),
		Behaviours: map[string]core.BehaviourConfig{
			"recorder": {Binary: bin("recorder"), HandleTimeout: 5 * time.Second, StopTimeout: 2 * time.Second,
				Env: []string{"RECORDER_MARKERS=" + storeDir}},
		},
		MaxAttempts: 3,
		SocketDir:   os.TempDir(),
	}
	if t != nil {
		cfg.Logger = testLogger(t)
	}
	for _, a := range actors {
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: a, Behaviour: "recorder"})
	}
	return cfg
}

// startCore starts a core and shuts it down when the test ends.
func startCore(t *testing.T, cfg core.Config) *core.Core {
	t.Helper()
	c, err := core.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	})
	return c
}

// applied decodes the recorder's committed state.
func applied(t testing.TB, c *core.Core, actor string) []string {
	t.Helper()
	st, err := c.Store().State(context.Background(), actor)
	require.NoError(t, err)
	if len(st.Data) == 0 {
		return nil
	}
	var s struct {
		Applied []string `json:"applied"`
	}
	require.NoError(t, json.Unmarshal(st.Data, &s))
	return s.Applied
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, within, what, cond)
}

// drained reports whether every actor's mailbox is empty.
func drained(c *core.Core, actors ...string) bool {
	for _, a := range actors {
		s, err := c.Store().Stats(a)
		if err != nil || s.Depth > 0 {
			return false
		}
	}
	return true
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mailboxStore shortens the store type in test helpers.
type mailboxStore = mailbox.Store
