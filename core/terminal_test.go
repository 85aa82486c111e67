package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
)

// A terminal error refuses the request: the message is applied (its state
// and its sends commit), the caller gets the refusal, a retry with the same
// id gets the same refusal without a second application, and nothing is
// retried or dead-lettered.
func TestTerminalErrorIsTheOutcome(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "bank", "audit"))
	ctx := ctxFor(t, 30*time.Second)
	_, err := c.Call(ctx, "bank", []byte("refuse:audit:insufficient funds: balance 20, asked 500"), core.SendOptions{ID: "w-1"})
	var refused *core.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, "insufficient funds: balance 20, asked 500", refused.Reason)
	assert.Equal(t, "bank", refused.Actor)
	assert.Equal(t, "w-1", refused.ID)

	assert.Equal(t, []string{"refuse:audit:insufficient funds: balance 20, asked 500"}, applied(t, c, "bank"), "the refusing handle's state commits")
	waitFor(t, 10*time.Second, "the refusing handle's send to be applied", func() bool { return len(applied(t, c, "audit")) == 1 })
	assert.Equal(t, []string{"note"}, applied(t, c, "audit"))

	_, err = c.Call(ctx, "bank", []byte("refuse:audit:insufficient funds: balance 20, asked 500"), core.SendOptions{ID: "w-1"})
	require.ErrorAs(t, err, &refused, "a retry with the same id gets the stored refusal")
	assert.Equal(t, "insufficient funds: balance 20, asked 500", refused.Reason)
	assert.Len(t, applied(t, c, "bank"), 1, "the retry is not applied again")

	dl, err := c.Store().DeadLetters(ctx, "bank")
	require.NoError(t, err)
	assert.Empty(t, dl, "a refusal is never dead-lettered")
	assert.EqualValues(t, 0, status(t, c, "bank").Failed, "a refusal is not a failure")
}

// Errors that cross the plugin boundary keep their kind: the calling
// handler matches them with errors.As and errors.Is (the recorder's probe
// classifies them that way and replies with the class).
func TestCallErrorsKeepTheirKindInThePlugin(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	cfg.MaxMessageSize = 4096
	cfg.MaxAttempts = 1
	b := cfg.Behaviours["recorder"]
	b.HandleTimeout = 4 * time.Second // calls from handlers time out at 2 s
	cfg.Behaviours["recorder"] = b
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	cases := []struct{ payload, want string }{
		{"probe:b:hello", "ok:ok:hello"},
		{"probe:b:refuse::no such order", "refused by b: no such order"},
		{"probe:nosuch:x", "unknown actor"},
		{"probe:b:probe:a:x", "ok:cycle"}, // b's call back to a is the cycle
		{"probebig:b:5000", "too large"},
		{"probe:b:silent", "no reply"},
		{"probe:b:error", "dead-lettered"},
	}
	for _, tc := range cases {
		reply, err := c.Call(ctx, "a", []byte(tc.payload), core.SendOptions{})
		require.NoError(t, err, tc.payload)
		assert.Equal(t, tc.want, string(reply), tc.payload)
	}
}

// A handler's call that gets no answer within the call timeout gets
// ErrCallTimeout while it still has time to answer its own batch.
func TestHandlerCallTimesOutWithItsKind(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	b := cfg.Behaviours["recorder"]
	b.HandleTimeout = 4 * time.Second
	cfg.Behaviours["recorder"] = b
	cfg.MaxAttempts = 1
	c := startCore(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := c.Call(ctx, "a", []byte("probe:b:hang"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "timeout", string(reply))
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}
