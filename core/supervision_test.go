package core_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// A behaviour whose plugin cannot start exhausts its own supervisor's
// restart intensity; the other behaviours' actors keep serving and the core
// stays up (G5).
func TestBrokenBehaviourHarmsOnlyItsActors(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "good")
	cfg.Behaviours["broken"] = core.BehaviourConfig{Binary: "/bin/true", StartTimeout: time.Second}
	cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: "bad", Behaviour: "broken"})
	cfg.Supervision.MaxRestarts = 2
	cfg.Supervision.Period = 10 * time.Second
	c, err := core.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })
	require.NoError(t, c.Start(ctxFor(t, 200*time.Millisecond)))
	waitFor(t, 20*time.Second, "the broken behaviour to fail", func() bool {
		st := status(t, c, "bad")
		return st.Restarts >= 2 && st.LastError != ""
	})
	assert.Contains(t, status(t, c, "bad").LastError, "/bin/true", "the error names the binary")
	reply, err := c.Call(ctxFor(t, 20*time.Second), "good", []byte("fine"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:fine", string(reply))
	select {
	case <-c.Done():
		t.Fatal("one broken behaviour took the whole core down")
	default:
	}
}

// Requirement cycles are refused before anything starts, with the cycle
// named.
func TestRequirementCycleIsRefused(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b", "c")
	cfg.Actors[0].Requires = []string{"b"}
	cfg.Actors[1].Requires = []string{"c"}
	cfg.Actors[2].Requires = []string{"a"}
	opened := false
	open := cfg.OpenStore
	cfg.OpenStore = func(opts mailbox.Options) (m mailboxStore, err error) {
		opened = true
		return open(opts)
	}
	_, err := core.New(cfg)
	require.Error(t, err)
	assert.ErrorContains(t, err, "requirement cycle: a -> b -> c -> a")
	assert.False(t, opened, "nothing was started or opened")
}

// An actor that requires an actor of another behaviour starts only once
// that one runs, and not at all while it cannot.
func TestCrossBehaviourRequirement(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "needs-counter", "needs-broken")
	cfg.Behaviours["counter"] = core.BehaviourConfig{Binary: bin("counter")}
	cfg.Behaviours["broken"] = core.BehaviourConfig{Binary: "/bin/true", StartTimeout: 300 * time.Millisecond}
	cfg.Actors = append(cfg.Actors,
		core.ActorConfig{Name: "counter", Behaviour: "counter"},
		core.ActorConfig{Name: "broken", Behaviour: "broken"})
	cfg.Actors[0].Requires = []string{"counter"}
	cfg.Actors[1].Requires = []string{"broken"}
	cfg.Behaviours["recorder"] = core.BehaviourConfig{Binary: bin("recorder"), StartTimeout: 2 * time.Second}
	cfg.Supervision.MaxRestarts = 1000
	c, err := core.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })
	require.NoError(t, c.Start(ctxFor(t, 200*time.Millisecond)))
	waitFor(t, 20*time.Second, "needs-counter running", func() bool { return status(t, c, "needs-counter").Status == "running" })
	assert.Equal(t, "running", status(t, c, "counter").Status)
	waitFor(t, 20*time.Second, "needs-broken to fail waiting", func() bool {
		return status(t, c, "needs-broken").LastError != ""
	})
	st := status(t, c, "needs-broken")
	assert.NotEqual(t, "running", st.Status)
	assert.Contains(t, st.LastError, "waiting for required actors [broken]")
}
