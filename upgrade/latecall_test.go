package upgrade_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// A module started by an upgrade or a rollback serves calls from its
// handlers long after it started: past go-plugin's 5 s broker window, which
// once broke every call a module made after its first 5 s.
func TestCallsWorkLongAfterUpgradeAndRollback(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 2, upgrade.Options{})
	askLate := func(want string) {
		t.Helper()
		idle := time.NewTimer(6 * time.Second) // the broker's window is 5 s
		<-idle.C
		reply, err := s.core.Call(ctxFor(t, 20*time.Second), "kv0", []byte("ask:kv1"), core.SendOptions{})
		require.NoError(t, err)
		assert.Equal(t, want, string(reply))
	}
	askLate("v1 heard v1:1")

	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	askLate("v2 heard v2:2")

	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.NoError(t, err)
	askLate("v1 heard v1:3")
}
