package upgrade_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// Passive actors are migrated by an upgrade like running ones: each is
// woken, paused and moved, so that after the upgrade every actor's
// committed state is the new version's, and a passive actor woken later
// by a message runs on the new version with its migrated state; a
// rollback moves them back the same way.
func TestPassiveActorsMigrateInAnUpgrade(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := bootWith(t, dir, 4, upgrade.Options{GroupSize: 2}, func(cfg *core.Config) {
		kv := cfg.Behaviours["kv"]
		kv.PassivateAfter = 100 * time.Millisecond
		cfg.Behaviours["kv"] = kv
	})
	passive := func() bool {
		list, err := s.core.Status(ctxFor(t, 10*time.Second))
		require.NoError(t, err)
		for _, st := range list {
			if st.Status != core.StatusPassive {
				return false
			}
		}
		return true
	}
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("one"), core.SendOptions{})
		require.NoError(t, err)
	}
	waitFor(t, 20*time.Second, "every actor passive", passive)

	install(t, "kv2", s.source)
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", "")
	require.NoError(t, err)
	assert.Equal(t, "completed", rec.Outcome)
	for _, a := range s.actors {
		st := s.state(t, a)
		assert.EqualValues(t, 2, st.Schema, "passive actor %s migrated", a)
		assert.Equal(t, "2.0.0", st.Module)
		assert.Equal(t, []string{"one"}, st.Applied)
	}
	waitFor(t, 20*time.Second, "every actor passive after the upgrade", passive)
	reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("two"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v2:2", string(reply), "woken on v2 with its migrated state")

	waitFor(t, 20*time.Second, "every actor passive before the rollback", passive)
	_, err = s.mgr.Rollback(ctxFor(t, 60*time.Second), "kv")
	require.NoError(t, err)
	for _, a := range s.actors {
		assert.Equal(t, "1.0.0", s.state(t, a).Module, "passive actor %s moved back", a)
	}
	reply, err = s.core.Call(ctxFor(t, 10*time.Second), "kv1", []byte("two"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v1:2", string(reply))
}
