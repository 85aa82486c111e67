package core_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
)

// TestActorWaitsOutAFullDisk: an actor whose batch commit meets a full disk
// (the store refuses it at once and stores nothing) holds the batch and
// retries instead of crashing, so its supervisor does not restart it into
// a crash loop and give up; once space is freed it commits by itself, and
// every message is applied exactly once.
func TestActorWaitsOutAFullDisk(t *testing.T) {
	mnt := testbin.MountTmpfs(t, "48m")
	store := filepath.Join(mnt, "store")
	logs := &testbin.Buffer{}
	cfg := core.Config{
		OpenStore:  storeOpener(store, mailbox.DurabilitySync),
		Behaviours: map[string]core.BehaviourConfig{"counter": {Binary: bin("counter"), StopTimeout: 2 * time.Second}},
		Actors:     []core.ActorConfig{{Name: "c", Behaviour: "counter"}},
		SocketDir:  os.TempDir(),
		Logger:     slog.New(slog.NewJSONHandler(logs, nil)),
	}
	c := startCore(t, cfg)
	waitFor(t, 30*time.Second, "c runs", func() bool { return actorStatus(t, c, "c").Status == "running" })

	// Hold the actor between two commits while its mailbox fills.
	p, err := c.Upgrades().Pause(ctxFor(t, 10*time.Second), "c")
	require.NoError(t, err)
	const n = 20
	for i := 0; i < n; i++ {
		payload := make([]byte, 60<<10)
		_, _ = rand.Read(payload)
		_, err := c.Send(ctxFor(t, 10*time.Second), "c", payload, core.SendOptions{})
		require.NoError(t, err)
	}
	ballast := fillTmpfs(t, mnt)
	p.Resume(nil, nil)

	waitFor(t, 30*time.Second, "the actor's commit meets the full disk", func() bool {
		return strings.Contains(logs.String(), "waits for space")
	})
	// Over a window of several retries (a measurement, not a wait for a
	// condition), the actor is neither restarted nor failed.
	time.Sleep(2 * time.Second)
	st := actorStatus(t, c, "c")
	assert.Equal(t, "running", st.Status)
	assert.Zero(t, st.Restarts, "the full disk crashed the actor: %s", st.LastError)
	assert.NotContains(t, logs.String(), "actor crashed")

	require.NoError(t, os.Remove(ballast))
	waitFor(t, 30*time.Second, "the mailbox drains once space is back", func() bool { return drained(c, "c") })
	stored, err := c.Store().State(ctxFor(t, 5*time.Second), "c")
	require.NoError(t, err)
	var s struct {
		N int `json:"n"`
	}
	require.NoError(t, json.Unmarshal(stored.Data, &s))
	assert.Equal(t, n, s.N, "every message applied exactly once")
	assert.Contains(t, logs.String(), "disk space is back")
}

// fillTmpfs writes a ballast file until the file system is full to the byte.
func fillTmpfs(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return path
}

func actorStatus(t *testing.T, c *core.Core, name string) core.ActorStatus {
	t.Helper()
	all, err := c.Status(context.Background())
	require.NoError(t, err)
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for actor %q", name)
	return core.ActorStatus{}
}
