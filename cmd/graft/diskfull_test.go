package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// counterOnce builds the counter behaviour (testdata/counter), whose state
// stays small however big its messages, into binDir.
var counterOnce = sync.OnceValue(func() error { return testbin.Build(binDir, "./testdata/counter") })

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// fillUp writes a ballast file until the file system is full to the byte.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		chunk := random(t, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return path
}

// requireFullDiskError checks what a refused send tells its caller.
func requireFullDiskError(t *testing.T, msg, store string) {
	t.Helper()
	assert.Contains(t, msg, "disk full")
	assert.Contains(t, msg, store, "the error names where")
	assert.Contains(t, msg, "nothing was stored")
}

// TestDiskFullThroughGraft runs the real core with its store on a real
// 48 MB tmpfs and sends 60 KB incompressible payloads until the disk fills:
// sends fail at once saying the disk is full (never a 30 s hang), the log
// does not flood, `graft start` on a full disk fails cleanly instead of
// crashing the core, the core recovers by itself once space is freed, no
// acknowledged message is lost or applied twice, and SIGTERM stops it.
func TestDiskFullThroughGraft(t *testing.T) {
	require.NoError(t, counterOnce())
	mnt := testbin.MountTmpfs(t, "48m")
	store := filepath.Join(mnt, "data")
	spare := filepath.Join(mnt, "spare") // what the operator frees later
	require.NoError(t, os.WriteFile(spare, random(t, 16<<20), 0o600))
	p := startGraft(t, fmt.Sprintf(`store: {path: %s}
control: {dir: ./run}
behaviours:
  counter: {binary: %s}
actors:
  - {name: c, behaviour: counter}
`, store, plugin("counter")), []string{"c"})
	cl := control.NewClient(p.socket)
	defer cl.Close()
	alive := func() {
		t.Helper()
		select {
		case <-p.exited:
			t.Fatalf("the core exited (code %d):\n%s", p.cmd.ProcessState.ExitCode(), p.logs.String())
		default:
		}
	}

	// A send on a full disk fails, never hangs: one that waited out its
	// 30 s instead would fail with its deadline, not with a full disk.
	acked := 0
	for {
		require.Less(t, acked, 2000, "48 MB never filled")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cl.Send(ctx, "c", control.SendRequest{Payload: random(t, 60<<10), ID: "m" + strconv.Itoa(acked)})
		cancel()
		if err != nil {
			requireFullDiskError(t, err.Error(), store)
			break
		}
		acked++
	}
	t.Logf("%d sends acknowledged before the disk was full", acked)
	require.Greater(t, acked, 20)

	// Full to the last byte: the CLI's send fails, saying so (one that
	// hung would be killed by graft's 60 s and say nothing of the disk).
	ballast := fillUp(t, mnt)
	r := graft(t, string(random(t, 60<<10)), nil, "send", "c", "-", "--config", p.config)
	assert.NotEqual(t, 0, r.code)
	requireFullDiskError(t, r.stderr, store)
	alive()

	// Stopping and starting the actor on a full disk: the start fails with
	// a clear error or goes through; the core never crashes.
	p.ok(t, "stop", "c")
	r = graft(t, "", nil, "start", "c", "--config", p.config)
	if r.code != 0 {
		assert.Contains(t, r.stderr, "disk full", "graft start on a full disk: %s", r.stderr)
	}
	alive()
	assert.LessOrEqual(t, strings.Count(p.logs.String(), "background work failed"), 5, "log flood:\n%.4000s", p.logs.String())
	assert.NotContains(t, p.logs.String(), "panic")

	// Free the space: the core recovers by itself.
	require.NoError(t, os.Remove(ballast))
	require.NoError(t, os.Remove(spare))
	testbin.WaitFor(t, 30*time.Second, "the actor runs once space is back", func() bool {
		if p.status(t)["c"].Status == "running" {
			return true
		}
		graft(t, "", nil, "start", "c", "--config", p.config)
		return false
	})
	p.ok(t, "send", "c", "after", "--id", "after")
	acked++
	testbin.WaitFor(t, 60*time.Second, "every acknowledged message is applied", func() bool {
		st := p.status(t)["c"]
		return st.Depth == 0 && st.InFlight == 0
	})
	out := p.ok(t, "call", "c", "count", "--timeout", "20s")
	assert.Equal(t, strconv.Itoa(acked+1), out, "every acknowledged message applied exactly once (then the call)")
	alive()

	p.stop(t) // fails the test unless SIGTERM ends the core cleanly, within 20 s
}
