package upgrade_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/upgrade"
)

// requireNamesSource checks that err names source first and the cached
// copy (under cacheDir) only as a detail after it.
func requireNamesSource(t *testing.T, err error, source, cacheDir string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	t.Log(msg)
	require.Contains(t, msg, "start plugin "+source+" (")
	assert.NotContains(t, msg, "start plugin "+cacheDir)
	at := strings.Index(msg, cacheDir)
	assert.True(t, at < 0 || strings.Contains(msg[:at], "cached as "), "the cache file is only a detail: %s", msg)
	assert.Contains(t, msg, "crashed at start")
	assert.Contains(t, msg, "crashstart: missing setting DB_URL")
	assert.ErrorIs(t, err, dynamic.ErrBadBinary)
}

// An upgrade to a binary that fails its start names the --binary given,
// not the module-cache file the core ran.
func TestUpgradeErrorNamesTheBinaryGiven(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{})
	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	_, err = s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", bin("kv-crash"))
	requireNamesSource(t, err, bin("kv-crash"), filepath.Join(dir, "store", "modules"))

	// What the core is told about its cached copies, for its own errors.
	cur, _ := s.mgr.Current("kv")
	src, version := s.mgr.DescribeBinary("kv", cur.Path)
	assert.Equal(t, s.source, src)
	assert.Equal(t, "2.0.0", version)
	src, _ = s.mgr.DescribeBinary("kv", "/not/in/the/cache")
	assert.Empty(t, src)
}

// A configured binary that fails its start at boot is named as the user
// configured it, in the actor's status.
func TestStartErrorNamesTheConfiguredBinary(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv-crash", dir+"/kv")
	cfg, _ := kvConfig(t, dir, 1)
	mgr, err := upgrade.New(upgrade.Options{Dir: filepath.Join(dir, "store", "modules"), Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, mgr.Prepare(&cfg))
	c, err := core.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	})
	startCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Start(startCtx) // the actor cannot start; Start gives up waiting for it
	mgr.Attach(context.Background(), c.Upgrades())
	var last string
	waitFor(t, 20*time.Second, "the start failure in the status", func() bool {
		rows, err := c.Status(context.Background())
		require.NoError(t, err)
		last = rows[0].LastError
		return last != ""
	})
	t.Log(last)
	assert.Contains(t, last, "start plugin "+dir+"/kv (cached as "+filepath.Join(dir, "store", "modules"))
	assert.Contains(t, last, "crashed at start")
}
