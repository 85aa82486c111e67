package upgrade_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// Rollbacks walk back the lineage, as Erlang's release handler does:
// v1 -> v2 -> v3, rollback -> v2, rollback -> v1 (across a restart too),
// and at the oldest version a rollback is refused and says so. Before, a
// second rollback re-applied the version just rolled back from.
func TestRollbackWalksBackTheLineage(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{})
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("one"), core.SendOptions{})
		require.NoError(t, err)
	}
	for _, b := range []string{"kv2", "kv3"} {
		_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", bin(b))
		require.NoError(t, err, b)
	}
	rollback := func(wantTo string) {
		t.Helper()
		rec, err := s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
		require.NoError(t, err)
		assert.Equal(t, "rollback", rec.Kind)
		assert.True(t, strings.HasPrefix(rec.To, wantTo+" "), "rolled back to %s, want %s", rec.To, wantTo)
		cur, _ := s.mgr.Current("kv")
		assert.Equal(t, wantTo, cur.Code)
	}
	rollback("2.0.0")
	s.stop()
	s = boot(t, dir, 2, upgrade.Options{})
	rollback("1.0.0")
	for _, a := range s.actors {
		st := s.state(t, a)
		assert.EqualValues(t, 1, st.Schema, "actor %s migrated down to v1", a)
		assert.Equal(t, []string{"one"}, st.Applied)
	}
	_, err := s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.ErrorIs(t, err, upgrade.ErrNoPrevious)
	assert.ErrorContains(t, err, "1.0.0")
	assert.ErrorContains(t, err, "is the oldest version of \"kv\" this core has run")

	// Upgrading again starts a new lineage from v1.
	_, err = s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", bin("kv3"))
	require.NoError(t, err)
	rollback("1.0.0")
}

// A rollback of a behaviour that is not in the config says so, rather than
// "no previous version".
func TestRollbackOfAnUnknownBehaviour(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 1, upgrade.Options{})
	_, err := s.mgr.Rollback(ctxFor(t, 10*time.Second), "nothing")
	require.ErrorIs(t, err, upgrade.ErrUnknownBehaviour)
	assert.NotErrorIs(t, err, upgrade.ErrNoPrevious)
	assert.ErrorContains(t, err, `unknown behaviour "nothing": it is not in the config (its behaviours: kv)`)
}

// A core whose configured binary was deleted starts from the version in
// its cache, and warns.
func TestDeletedSourceStartsFromTheCache(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 1, upgrade.Options{})
	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	s.stop()
	require.NoError(t, os.Remove(s.source))
	log, lines := captureLogs(t)
	s = boot(t, dir, 1, upgrade.Options{Logger: log})
	assert.Contains(t, lines.String(), "configured plugin binary does not exist; starting from the version in the binary cache")
	reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("x"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v2:1", string(reply))
	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.NoError(t, err, "the previous version is in the cache too")
}

// A watched binary that is not executable is reported as such, with the
// fix; once fixed, it is picked up.
func TestWatcherSaysWhenABinaryIsNotExecutable(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	log, lines := captureLogs(t)
	s := boot(t, dir, 1, upgrade.Options{Debounce: 50 * time.Millisecond, Logger: log})
	require.NoError(t, s.mgr.Watch(ctxFor(t, 2*time.Minute)))
	install(t, "kv2", s.source)
	waitFor(t, 20*time.Second, "the upgrade to kv2", func() bool { return len(s.history(t)) == 1 })
	b, err := os.ReadFile(bin("kv3"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.source+".tmp", b, 0o644))
	require.NoError(t, os.Rename(s.source+".tmp", s.source))
	waitFor(t, 20*time.Second, "the not-executable warning", func() bool {
		return strings.Contains(lines.String(), "plugin binary changed but is not executable (mode 0644): make it executable with `chmod +x "+s.source+"`")
	})
	assert.NotContains(t, lines.String(), "not a runnable file yet")
	require.NoError(t, os.Chmod(s.source, 0o755))
	// The history records the upgrade before the journal makes it current.
	waitFor(t, 20*time.Second, "the upgrade once it is executable", func() bool {
		cur, _ := s.mgr.Current("kv")
		return len(s.history(t)) == 2 && cur.Code == "3.0.0"
	})
}

// An upgrade to an older code version than the one running (a stale
// configured binary, say) is refused, naming both and the way back; with
// force it runs.
func TestUpgradeToAnOlderVersionIsRefused(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{})
	ctx := ctxFor(t, time.Minute)
	_, err := s.mgr.Upgrade(ctx, "kv", bin("kv3"))
	require.NoError(t, err)
	_, err = s.mgr.Upgrade(ctx, "kv", bin("kv2"))
	require.ErrorIs(t, err, upgrade.ErrOlderVersion)
	assert.ErrorContains(t, err, "2.0.0")
	assert.ErrorContains(t, err, "3.0.0")
	assert.ErrorContains(t, err, "graft rollback kv")
	cur, _ := s.mgr.Current("kv")
	assert.Equal(t, "3.0.0", cur.Code, "nothing moved")
	_, err = s.mgr.UpgradeForced(ctx, "kv", bin("kv2"))
	require.NoError(t, err, "forced")
	cur, _ = s.mgr.Current("kv")
	assert.Equal(t, "2.0.0", cur.Code)
}
