package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
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

// mountTmpfs mounts a real tmpfs of the given size on a fresh folder and
// unmounts it when the test ends; it skips, saying why, only when mounting
// is impossible here.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs for the full-disk test (needs root and mount): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

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
	mnt := mountTmpfs(t, "48m")
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

	acked := 0
	for {
		require.Less(t, acked, 2000, "48 MB never filled")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		_, err := cl.Send(ctx, "c", control.SendRequest{Payload: random(t, 60<<10), ID: "m" + strconv.Itoa(acked)})
		cancel()
		if err != nil {
			require.Less(t, time.Since(start), 2*time.Second, "a send on a full disk took %s: %v", time.Since(start), err)
			requireFullDiskError(t, err.Error(), store)
			break
		}
		acked++
	}
	t.Logf("%d sends acknowledged before the disk was full", acked)
	require.Greater(t, acked, 20)

	// Full to the last byte: the CLI's send fails at once, saying so.
	ballast := fillUp(t, mnt)
	start := time.Now()
	r := graft(t, string(random(t, 60<<10)), nil, "send", "c", "-", "--config", p.config)
	assert.NotEqual(t, 0, r.code)
	assert.Less(t, time.Since(start), 5*time.Second, "graft send on a full disk took %s", time.Since(start))
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

	start = time.Now()
	p.stop(t)
	assert.Less(t, time.Since(start), 10*time.Second, "SIGTERM took %s with --grace 5s", time.Since(start))
}

// mountFrozenCapableFS mounts a fresh 64 MB ext4 image through a loop
// device (fsfreeze needs a file system that can be frozen, which tmpfs is
// not); it thaws and unmounts it when the test ends, and skips, saying
// why, when that is impossible here.
func mountFreezableFS(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	mnt := t.TempDir()
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
		}
		return nil
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := run("mkfs.ext4", "-q", "-F", img); err != nil {
		t.Skipf("cannot make an ext4 file system for the frozen-disk test: %v", err)
	}
	if err := run("mount", "-o", "loop", img, mnt); err != nil {
		t.Skipf("cannot mount a loop device for the frozen-disk test: %v", err)
	}
	t.Cleanup(func() {
		_ = run("fsfreeze", "-u", mnt)
		if err := run("umount", mnt); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return mnt
}

// TestSIGTERMEndsTheCoreOnAFrozenDisk: a disk that stops answering blocks
// the store's writes in the kernel, where nothing can cancel them, so a
// graceful stop cannot finish; SIGTERM still ends the core shortly after
// --grace (5 s here), saying why.
func TestSIGTERMEndsTheCoreOnAFrozenDisk(t *testing.T) {
	require.NoError(t, counterOnce())
	mnt := mountFreezableFS(t)
	require.NoError(t, os.Chmod(mnt, 0o700))
	p := startGraft(t, fmt.Sprintf(`store: {path: %s}
control: {dir: ./run}
behaviours:
  counter: {binary: %s}
actors:
  - {name: c, behaviour: counter}
`, filepath.Join(mnt, "data"), plugin("counter")), []string{"c"})
	p.ok(t, "send", "c", "before the freeze")
	out, err := exec.Command("fsfreeze", "-f", mnt).CombinedOutput()
	if err != nil {
		t.Skipf("cannot freeze the file system: %v: %s", err, out)
	}
	// A send now blocks in the kernel; it holds the store open.
	go graft(t, "x", nil, "send", "c", "-", "--timeout", "3s", "--config", p.config)

	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the core did not exit within 20 s of SIGTERM with --grace 5s:\n%s", p.logs.String())
	}
	took := time.Since(start)
	assert.Less(t, took, 5*time.Second+watchdogSlack+2*time.Second, "SIGTERM took %s", took)
	assert.NotNil(t, p.logLine("graceful shutdown did not finish within --grace; exiting now (everything acknowledged is durable, the next start recovers the rest)"),
		"the core says why it exits:\n%s", p.logs.String())
}
