package upgrade_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/upgrade"
)

// When every actor of a behaviour runs in a process of its own, the shared
// module an upgrade or rollback migrates their states with is stopped at
// the end: after each op the core runs one module per actor and no more.
// (It used to run until the next upgrade; the chaos run's descriptor check
// found it.)
func TestOwnProcessUpgradeLeavesNoSharedModule(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := bootWith(t, dir, 3, upgrade.Options{}, func(cfg *core.Config) {
		for i := range cfg.Actors {
			cfg.Actors[i].OwnProcess = true
		}
	})
	modules := func(what string) {
		t.Helper()
		for _, a := range s.actors { // each actor's own module runs once it has work
			_, err := s.core.Call(ctxFor(t, 20*time.Second), a, []byte("x"), core.SendOptions{})
			require.NoError(t, err)
		}
		waitFor(t, 20*time.Second, what+": one module process per actor", func() bool { return len(testbin.Children()) == 3 })
	}
	modules("at start")
	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	modules("after the upgrade")
	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.NoError(t, err)
	modules("after the rollback")
}
