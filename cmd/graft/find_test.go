package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/testbin"
)

// graftIn runs the real binary in dir with only env's GRAFT_ variables.
func graftIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, graftBin(), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRAFT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "graft %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// The README's commands work without --config: the core is found from
// --config, --socket, $GRAFT_SOCKET, $GRAFT_CONFIG, then ./graft.yaml.
func TestCommandsFindTheCoreWithoutConfigFlag(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	here := filepath.Dir(p.config)
	elsewhere := testbin.ShortDir(t)
	nowhere := filepath.Join(elsewhere, "nothing.sock")
	ok := func(r result) {
		t.Helper()
		require.Equal(t, 0, r.code, r.stderr)
	}

	// ./graft.yaml, as in the README.
	r := graftIn(t, here, nil, "status")
	ok(r)
	assert.Regexp(t, `(?m)^a\s+recorder\s`, r.stdout)
	ok(graftIn(t, here, nil, "history"))
	r = graftIn(t, here, nil, "rollback", "recorder")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no previous version to roll back to", "it reached the core")

	// $GRAFT_CONFIG, from anywhere; it comes before ./graft.yaml.
	ok(graftIn(t, elsewhere, []string{"GRAFT_CONFIG=" + p.config}, "status"))
	r = graftIn(t, here, []string{"GRAFT_CONFIG=" + filepath.Join(elsewhere, "missing.yaml")}, "status")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "from $GRAFT_CONFIG")
	assert.Contains(t, r.stderr, "missing.yaml")

	// The order: --config, --socket, $GRAFT_SOCKET, $GRAFT_CONFIG.
	ok(graftIn(t, elsewhere, []string{"GRAFT_SOCKET=" + nowhere}, "status", "--config", p.config, "--socket", nowhere))
	ok(graftIn(t, elsewhere, []string{"GRAFT_SOCKET=" + nowhere}, "status", "--socket", p.socket))
	ok(graftIn(t, elsewhere, []string{"GRAFT_SOCKET=" + p.socket, "GRAFT_CONFIG=" + filepath.Join(elsewhere, "missing.yaml")}, "status"))

	// Nothing says where: every way is named.
	r = graftIn(t, elsewhere, nil, "status")
	assert.Equal(t, 2, r.code)
	for _, w := range []string{"--config FILE", "--socket PATH", "GRAFT_SOCKET", "GRAFT_CONFIG", "graft.yaml"} {
		assert.Contains(t, r.stderr, w)
	}

	help := graftIn(t, elsewhere, nil, "--help").stdout
	for _, w := range []string{"$GRAFT_CONFIG", "./graft.yaml"} {
		assert.Contains(t, help, w)
	}
}

// A send whose connection drops before the core answers (a core killed
// mid-request) says the message may or may not be durable, and how to
// retry safely.
func TestDroppedSendSaysItMayBeDurable(t *testing.T) {
	sock := filepath.Join(testbin.ShortDir(t), "graft.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Read(make([]byte, 4096)) // the request arrived; then the core "dies"
			c.Close()
		}
	}()
	r := graft(t, "", nil, "send", "orders", "x", "--id", "order-42", "--socket", sock)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "may or may not be durable")
	assert.Contains(t, r.stderr, "retrying with the same id (--id order-42) is safe")

	r = graft(t, "", nil, "send", "orders", "x", "--socket", sock)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "may or may not be durable")
	assert.Contains(t, r.stderr, "send with an id (--id ID) to make a retry safe")
}
