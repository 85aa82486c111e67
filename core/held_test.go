package core_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
)

// An actor named in Config.HeldDeadLetters (a baking canary's, across a
// core restart) keeps a message that fails MaxAttempts times in its
// mailbox, retried, from its first batch; once let go, the next failure
// dead-letters it.
func TestHeldFromTheStart(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	cfg.HeldDeadLetters = []string{"a"}
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	for _, actor := range []string{"a", "b"} {
		_, err := c.Send(ctx, actor, []byte("error"), core.SendOptions{})
		require.NoError(t, err)
	}
	waitFor(t, 30*time.Second, "b's message dead-lettered, as no hold names b", func() bool {
		dls, err := c.Store().DeadLetters(ctx, "b")
		require.NoError(t, err)
		return len(dls) == 1
	})
	waitFor(t, 30*time.Second, "a's message tried past MaxAttempts (3)", func() bool { return status(t, c, "a").Failed >= 5 })
	dls, err := c.Store().DeadLetters(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, dls, "held, not dead-lettered")
	assert.EqualValues(t, 1, status(t, c, "a").Depth, "still in its mailbox")

	c.Upgrades().HoldDeadLetters([]string{"a"}, false)
	waitFor(t, 30*time.Second, "a's message dead-lettered once let go", func() bool {
		dls, err := c.Store().DeadLetters(ctx, "a")
		require.NoError(t, err)
		return len(dls) == 1
	})
}
