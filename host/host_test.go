package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/host"
	"github.com/graft-host/graft/internal/testbin"
)

// within bounds every wait of these tests: generous, for a loaded 2-core
// machine; a wait ends as soon as its condition holds.
const within = 60 * time.Second

// goConfig is a config built in Go: one recorder actor, the store in a
// t.TempDir, the sockets in a short folder (unix socket paths are short).
func goConfig(t *testing.T) *config.Config {
	cfg := config.Defaults(filepath.Join(t.TempDir(), "data"), filepath.Join(testbin.ShortDir(t), "run"))
	cfg.Behaviours["recorder"] = core.BehaviourConfig{Binary: recorder()}
	cfg.Actors = []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}
	return cfg
}

// running is a Host whose Run goes on in the background.
type running struct {
	h      *host.Host
	cancel context.CancelFunc
	done   chan error // Run's result
}

// run starts h.Run and waits until h is Ready, failing if Run returns
// first. The host is stopped when the test ends, if the test has not.
func run(t *testing.T, h *host.Host) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop(t) }) // a test that stops it itself checks the error
	select {
	case <-h.Ready():
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run returned before the host was ready: %v", err)
	case <-time.After(within):
		t.Fatalf("the host was not ready within %s", within)
	}
	return r
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // a second stop sees the same result
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %s of its context ending", within)
		return nil
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	return ctx
}

// TestRunServesUntilCancelled: a Host built from Go values starts a real
// plugin on a real store, answers a call on its control socket and serves
// metrics; cancelling the context stops it cleanly: Run returns nil, the
// socket is gone and no plugin process is left.
func TestRunServesUntilCancelled(t *testing.T) {
	cfg := goConfig(t)
	h, err := host.New(host.Options{Config: cfg, Logger: testbin.Logger(t), MetricsAddr: "127.0.0.1:0", Grace: 10 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(cfg.Control.Dir, config.SocketName), h.Socket())
	assert.Empty(t, h.MetricsAddr(), "no address before Run")
	r := run(t, h)

	cl := api.NewClient(h.Socket())
	defer cl.Close()
	resp, err := cl.Call(ctxFor(t), "a", api.CallRequest{SendRequest: api.SendRequest{Text: "hello", ID: "m1"}})
	require.NoError(t, err)
	assert.Equal(t, "ok:hello", resp.Text)
	info, err := cl.Info(ctxFor(t))
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), info.PID)
	assert.Equal(t, h.Socket(), info.Socket)

	require.NotEmpty(t, h.MetricsAddr())
	assert.Contains(t, scrape(t, "http://"+h.MetricsAddr()+"/metrics"), `graft_messages_processed_total{actor="a",behaviour="recorder"} 1`)
	entries, err := os.ReadDir(cfg.Control.PluginSockets)
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the plugin's socket folder is under control.dir/p")

	require.NoError(t, r.stop(t))
	_, err = os.Lstat(h.Socket())
	assert.True(t, errors.Is(err, os.ErrNotExist), "the control socket is removed: %v", err)
	testbin.WaitFor(t, 5*time.Second, "no recorder process left", func() bool { return len(testbin.Running(recorder())) == 0 })
	require.ErrorContains(t, h.Run(context.Background()), "a Host runs once")
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodGet, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	return string(body)
}

// TestSecondHostOnTheSameSocketRefused: a second Host on the config file
// of a running one is refused by Run with a clear error, before it
// touches anything: the first one's plugin sockets are left in place and
// it keeps answering.
func TestSecondHostOnTheSameSocketRefused(t *testing.T) {
	dir := testbin.ShortDir(t)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
behaviours:
  recorder: {binary: %s}
actors:
  - {name: a, behaviour: recorder}
`, recorder())), 0o600))
	newHost := func() *host.Host {
		cfg, err := host.LoadConfig(path)
		require.NoError(t, err)
		h, err := host.New(host.Options{Config: cfg, Logger: testbin.Logger(t)})
		require.NoError(t, err, "New claims nothing, so a second one is built")
		return h
	}
	first := run(t, newHost())
	cl := api.NewClient(first.h.Socket())
	defer cl.Close()
	_, err := cl.Call(ctxFor(t), "a", api.CallRequest{SendRequest: api.SendRequest{Text: "one"}})
	require.NoError(t, err)
	pluginSockets := filepath.Join(dir, "run", config.PluginSocketsName)
	before, err := os.ReadDir(pluginSockets)
	require.NoError(t, err)
	require.NotEmpty(t, before)

	second := newHost()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err = second.Run(ctx)
	require.ErrorIs(t, err, control.ErrRunning)
	assert.Contains(t, err.Error(), "another graft core is running on "+first.h.Socket())
	select {
	case <-second.Ready():
		t.Fatal("a refused host reports ready")
	default:
	}

	after, err := os.ReadDir(pluginSockets)
	require.NoError(t, err)
	assert.Equal(t, names(before), names(after), "the refused host left the first one's plugin sockets alone")
	resp, err := cl.Call(ctxFor(t), "a", api.CallRequest{SendRequest: api.SendRequest{Text: "two"}})
	require.NoError(t, err, "the first core is unharmed")
	assert.Equal(t, "ok:two", resp.Text)
	require.NoError(t, first.stop(t))
}

func names(ents []os.DirEntry) []string {
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out
}

// TestNewRefusesBadOptionsBeforeTouchingAnything: a config built in Go is
// held to the file's rules, every problem listed by key, and nothing is
// created on disk; a missing config and a negative grace are refused too.
func TestNewRefusesBadOptionsBeforeTouchingAnything(t *testing.T) {
	cfg := goConfig(t)
	cfg.Store.Path = "relative/data"
	cfg.Behaviours["ghost"] = core.BehaviourConfig{Binary: filepath.Join(t.TempDir(), "nosuch")}
	cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: "b", Behaviour: "nosuch"}, core.ActorConfig{Name: "a", Behaviour: "recorder"})
	cfg.Limits.MaxAttempts = 0
	_, err := host.New(host.Options{Config: cfg})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	msg := err.Error()
	for _, want := range []string{
		"invalid config (built in Go; ",
		`store.path: "relative/data" is relative`,
		"limits.max_attempts: must be at least 1, got 0",
		"behaviours.ghost.binary: ",
		`actors[1].behaviour: unknown behaviour "nosuch"`,
		`actors[2].name: duplicate actor "a" (first declared as actors[0])`,
	} {
		assert.Contains(t, msg, want)
	}
	_, err = os.Stat(cfg.Control.Dir)
	assert.True(t, os.IsNotExist(err), "no control folder was created")

	_, err = host.New(host.Options{})
	require.ErrorContains(t, err, "Options.Config is nil")
	_, err = host.New(host.Options{Config: goConfig(t), Grace: -time.Second})
	require.ErrorContains(t, err, "Options.Grace is -1s")
}
