package dynamic_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// TestStartStopCyclesLeakNothing starts and stops the echo plugin 1,000
// times (100 with -short) and checks that no process, goroutine or file
// descriptor is left over, and no socket file. Each cycle also handles one
// batch, so the stream machinery is exercised.
func TestStartStopCyclesLeakNothing(t *testing.T) {
	cycles := 1000
	if testing.Short() {
		cycles = 100
	}
	cfg := config(t, "echo")
	cfg.Logger = discard()
	ctx := context.Background()

	// Warm up once so lazily created runtime/grpc goroutines exist.
	cycle(t, ctx, cfg)
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	g0, fd0, kids0 := settle(), countFDs(), len(children())
	t0 := time.Now()
	for i := range cycles {
		cycle(t, ctx, cfg)
		if t.Failed() {
			t.Fatalf("cycle %d failed", i)
		}
	}
	t.Logf("%d start/handle/stop cycles in %s (%s each)", cycles, time.Since(t0).Round(time.Millisecond), (time.Since(t0) / time.Duration(cycles)).Round(time.Microsecond))

	// Goroutines of the last cycle may still be on their way out.
	deadline := time.Now().Add(5 * time.Second)
	for settle() > g0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := settle(); g > g0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after\n%s", g0, g, buf[:runtime.Stack(buf, true)])
	}
	require.LessOrEqual(t, countFDs(), fd0, "file descriptors leaked")
	require.LessOrEqual(t, len(children()), kids0, "child processes left behind")
	ents, err := os.ReadDir(cfg.SocketDir)
	require.NoError(t, err)
	require.Empty(t, ents, "socket directories left behind")
}

func cycle(t *testing.T, ctx context.Context, cfg dynamic.Config) {
	m, err := dynamic.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 2, Data: []byte(`{}`)}, Messages: msgs("x")})
	if err != nil || string(res.Results[0].Reply) != "x" {
		t.Fatalf("handle: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = m.Stop(sctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	<-m.Exited()
}

// TestLivenessPipeAloneEndsThePlugin checks the SDK side of "no orphans"
// without Pdeathsig (which would mask it): the plugin is started by hand with
// graft's cookie and a liveness pipe; closing the pipe's write end, as the
// kernel does when the host dies, makes it exit within a second.
func TestLivenessPipeAloneEndsThePlugin(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.Command(bin("echo"))
	cmd.Env = append(os.Environ(), wire.MagicCookieKey+"="+wire.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1", wire.EnvLivenessFD+"=3", "PLUGIN_UNIX_SOCKET_DIR="+shortDir(t))
	cmd.ExtraFiles = []*os.File{r}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	_ = r.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	line, err := readLine(out)
	require.NoError(t, err)
	require.Contains(t, line, "|grpc", "handshake line")
	require.NoError(t, w.Close()) // the host "dies"
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, 3, ee.ExitCode(), "the SDK exits with status 3 when the host is gone")
	case <-time.After(time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("plugin still running 1s after its liveness pipe closed")
	}
}
