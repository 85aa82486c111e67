package core_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
)

// The effects crash test re-executes this test binary as a core process
// whose producers have actors spawn children and set timers to them
// (spawnafter) while it is killed with SIGKILL; a core restarted on the
// same store must show every acknowledged spawn once and every timer
// fired exactly once, no earlier than it was due.

const (
	envEffects     = "GRAFT_CORE_EFFECTS"
	effectsParents = 4
)

func effectsParentNames() []string {
	var out []string
	for i := 0; i < effectsParents; i++ {
		out = append(out, fmt.Sprintf("p%d", i))
	}
	return out
}

// runEffectsChild is the core process of the effects crash test.
func runEffectsChild() {
	pluginDir = os.Getenv(envPlugins)
	cfg := effectsConfig(nil, os.Getenv(envChild), effectsParentNames()...)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := core.New(cfg)
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	say("ready")
	for k := 0; k < effectsParents; k++ {
		go func(k int) {
			for n := 0; ; n++ {
				kid := fmt.Sprintf("kid%d-%d", k, n)
				delay := (k*37 + n*53) % 400
				if n == 0 {
					delay = 4000 // pending when the core is killed, unless it takes that long
				}
				say("try p%d %s %d %d", k, kid, delay, time.Now().UnixNano())
				payload := fmt.Sprintf("spawnafter:%s:%d:ring", kid, delay)
				if _, err := c.Call(ctx, fmt.Sprintf("p%d", k), []byte(payload), core.SendOptions{ID: kid}); err != nil {
					say("error %v", err)
					return
				}
				say("ok %s", kid)
			}
		}(k)
	}
	select {}
}

func TestKill9WhileSpawningAndSettingTimers(t *testing.T) {
	for run, afterOKs := range []int{20, 120} {
		t.Run(fmt.Sprint(run), func(t *testing.T) { killWhileSpawning(t, afterOKs) })
	}
}

// effectsTry is one spawnafter call the child tried.
type effectsTry struct {
	parent, kid string
	delay       time.Duration
	began       time.Time
}

func killWhileSpawning(t *testing.T, afterOKs int) {
	dir := t.TempDir()
	child := startCoreChild(t, []string{envChild + "=" + dir, envPlugins + "=" + pluginDir, envEffects + "=1"}, afterOKs, 90*time.Second, "spawns")
	killed := time.Now()
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGKILL))
	_ = child.cmd.Wait()
	lines := child.output()
	waitFor(t, time.Second, "the killed core's plugins to exit", func() bool { return len(testbin.Running(bin("effects"))) == 0 })

	var tries []effectsTry
	oks := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "try":
			ms, _ := strconv.Atoi(f[3])
			ns, _ := strconv.ParseInt(f[4], 10, 64)
			tries = append(tries, effectsTry{parent: f[1], kid: f[2], delay: time.Duration(ms) * time.Millisecond, began: time.Unix(0, ns)})
		case "ok":
			oks[f[1]] = true
		case "error":
			t.Fatalf("core child failed: %s", l)
		}
	}

	restarted := time.Now()
	c := startCore(t, effectsConfig(t, dir, effectsParentNames()...))
	ctx := ctxFor(t, 120*time.Second)
	for _, k := range tries {
		if !oks[k.kid] {
			// Unacknowledged: retried with its id, applied at most once more.
			_, err := c.Call(ctx, k.parent, []byte(fmt.Sprintf("spawnafter:%s:%d:ring", k.kid, k.delay.Milliseconds())), core.SendOptions{ID: k.kid})
			require.NoError(t, err)
		}
	}
	waitFor(t, 60*time.Second, "every kid's timer fires", func() bool {
		for _, k := range tries {
			if len(stateOf(t, c, k.kid).timers["ring"]) == 0 {
				return false
			}
		}
		return true
	})
	applied := map[string]int{}
	for _, p := range effectsParentNames() {
		for _, e := range stateOf(t, c, p).applied {
			applied[e]++
		}
	}
	pendingAtKill := 0
	for _, k := range tries {
		_, err := c.Call(ctx, k.kid, []byte("last"), core.SendOptions{})
		require.NoError(t, err, k.kid)
		rec := stateOf(t, c, k.kid)
		assert.Equal(t, 1, applied[fmt.Sprintf("spawnafter:%s:%d:ring", k.kid, k.delay.Milliseconds())], "%s spawned by one applied message", k.kid)
		assert.Equal(t, 1, registered(t, c, k.kid))
		require.Len(t, rec.applied, 4, "%s: init, its init message, the timer, last: %v", k.kid, rec.applied)
		assert.Equal(t, []string{"init", "init-" + k.kid}, rec.applied[:2], k.kid)
		require.Len(t, rec.timers["ring"], 1, "%s: the timer fired exactly once", k.kid)
		due := k.began.Add(k.delay)
		assert.False(t, rec.timers["ring"][0].Before(due), "%s fired at %s, before it was due (%s at the earliest)", k.kid, rec.timers["ring"][0], due)
		if oks[k.kid] && k.began.Add(k.delay).After(killed) {
			pendingAtKill++
			assert.True(t, rec.timers["ring"][0].After(restarted), "%s: acknowledged, due after the kill, fired after the restart", k.kid)
		}
	}
	t.Logf("%d tries, %d acknowledged, %d acknowledged timers pending at the kill", len(tries), len(oks), pendingAtKill)
	for _, p := range effectsParentNames() {
		pending, err := c.Timers(ctx, p)
		require.NoError(t, err)
		assert.Empty(t, pending, "%s has no timer left", p)
	}
}
