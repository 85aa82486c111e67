package core_test

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
)

// After its module process is killed and restarted, a behaviour's handlers
// still reach other actors long after the new process started (past the
// broker's 5 s window).
func TestCallsWorkLongAfterModuleRestart(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a", "b"))
	ctx := ctxFor(t, 60*time.Second)
	out, err := c.Call(ctx, "a", []byte("pid"), core.SendOptions{})
	require.NoError(t, err)
	pid, err := strconv.Atoi(string(out))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, 20*time.Second, "a new module process", func() bool {
		out, err := c.Call(ctx, "a", []byte("pid"), core.SendOptions{})
		return err == nil && string(out) != strconv.Itoa(pid)
	})
	idle := time.NewTimer(6 * time.Second)
	<-idle.C
	reply, err := c.Call(ctx, "a", []byte("call:b:late"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:late", string(reply))
}
