package core_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

func mustCall(t *testing.T, c *core.Core, actor, payload string) string {
	t.Helper()
	reply, err := c.Call(ctxFor(t, 30*time.Second), actor, []byte(payload), core.SendOptions{})
	require.NoError(t, err, "call %s %q", actor, payload)
	return string(reply)
}

// A replaced state is what the handler continues from, committed at the
// module's schema and version, and recorded in the history.
func TestReplaceStateIsWhatTheHandlerContinuesFrom(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	mustCall(t, c, "a", "x")
	mustCall(t, c, "a", "y")
	require.Equal(t, []string{"x", "y"}, applied(t, c, "a"))

	rep, err := c.ReplaceState(ctx, "a", []byte(`{"applied":["p","q"]}`), nil)
	require.NoError(t, err)
	assert.Equal(t, `{"applied":["x","y"]}`, string(rep.Old.Data))
	assert.Equal(t, mailbox.State{Schema: 1, Module: "1.0.0", Data: []byte(`{"applied":["p","q"]}`)}, rep.New)
	assert.Equal(t, "recorder", rep.Behaviour)

	assert.Equal(t, "ok:z", mustCall(t, c, "a", "z"))
	assert.Equal(t, []string{"p", "q", "z"}, applied(t, c, "a"), "the handler continued from the replaced state")

	hist, err := c.Store().ListHistory(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	h := hist[0]
	assert.Equal(t, rep.Record.ID, h.ID)
	assert.Equal(t, core.RepairKind, h.Kind)
	assert.Equal(t, "completed", h.Outcome)
	assert.Equal(t, "recorder", h.Behaviour)
	assert.Equal(t, "schema 1, 21 bytes, module 1.0.0", h.From)
	assert.Equal(t, "schema 1, 21 bytes, module 1.0.0", h.To)
	require.Len(t, h.Steps, 1)
	assert.Equal(t, "a", h.Steps[0].Actor)
	assert.Equal(t, "replace state", h.Steps[0].Step)
}

// A reset state runs Init at the next message, also after a core restart
// between the reset and that message.
func TestResetStateRunsInitAgainEvenAfterARestart(t *testing.T) {
	dir := t.TempDir()
	c := startCore(t, recorderConfig(t, dir, "a"))
	ctx := ctxFor(t, 60*time.Second)
	mustCall(t, c, "a", "x")
	rep, err := c.ResetState(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, mailbox.State{}, rep.New)
	assert.Equal(t, "empty (Init runs next)", rep.Record.To)
	st, err := c.Store().State(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, st.Data)
	assert.Empty(t, st.Module)
	mustCall(t, c, "a", "y")
	assert.Equal(t, []string{"y"}, applied(t, c, "a"), "Init made a fresh state for the next message")

	_, err = c.ResetState(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, c.Shutdown(ctx))
	c2 := startCore(t, recorderConfig(t, dir, "a"))
	assert.Equal(t, "ok:z", mustCall(t, c2, "a", "z"), "after a restart the reset actor still starts from Init")
	assert.Equal(t, []string{"z"}, applied(t, c2, "a"))

	hist, err := c2.Store().ListHistory(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 2)
	for _, h := range hist {
		assert.Equal(t, core.RepairKind, h.Kind)
		assert.Equal(t, "reset state", h.Steps[0].Step)
	}
}

// A stopped actor is repaired in the store and starts from the new state.
func TestRepairOfAStoppedActor(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	mustCall(t, c, "a", "x")
	require.NoError(t, c.StopActor(ctx, "a"))
	_, err := c.ReplaceState(ctx, "a", []byte(`{"applied":["r"]}`), nil)
	require.NoError(t, err)
	require.NoError(t, c.StartActor(ctx, "a"))
	mustCall(t, c, "a", "y")
	assert.Equal(t, []string{"r", "y"}, applied(t, c, "a"))
}

// Messages that arrive during a repair are neither lost nor applied twice:
// the state ends as the replacement plus a contiguous tail of the sends,
// in order (those committed before the pause went with the old state).
func TestReplaceStateUnderAStreamOfSends(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 60*time.Second)
	repaired := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		i, after := 0, 0
		for ; after < 10; i++ {
			select {
			case <-repaired:
				after++
			default:
			}
			if _, err := c.Send(ctx, "a", []byte(fmt.Sprintf("m%04d", i)), core.SendOptions{}); err != nil {
				t.Errorf("send %d: %v", i, err)
				break
			}
		}
		sent <- i
	}()
	waitFor(t, 20*time.Second, "some messages applied", func() bool { return len(applied(t, c, "a")) > 0 })
	_, err := c.ReplaceState(ctx, "a", []byte(`{"applied":["R"]}`), nil)
	require.NoError(t, err)
	close(repaired)
	n := <-sent
	waitFor(t, 30*time.Second, "mailbox drained", func() bool { return drained(c, "a") })
	got := applied(t, c, "a")
	require.Equal(t, "R", got[0], "the replacement is the base of what followed")
	tail := got[1:]
	require.GreaterOrEqual(t, len(tail), 10, "the sends after the repair were applied")
	first := n - len(tail)
	require.GreaterOrEqual(t, first, 0, "no message applied twice: %v", got)
	for i, m := range tail {
		require.Equal(t, fmt.Sprintf("m%04d", first+i), m, "a contiguous, ordered tail of the sends: %v", got)
	}
}

// Bad repairs change nothing and say what is wrong.
func TestRepairRefusals(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a")
	cfg.MaxStateSize = 1024
	c := startCore(t, cfg)
	ctx := ctxFor(t, 30*time.Second)
	mustCall(t, c, "a", "x")

	_, err := c.ReplaceState(ctx, "a", nil, nil)
	assert.ErrorIs(t, err, core.ErrInvalidState)
	assert.ErrorContains(t, err, "reset it instead")

	_, err = c.ReplaceState(ctx, "a", []byte(strings.Repeat("x", 1025)), nil)
	assert.ErrorIs(t, err, mailbox.ErrTooLarge)
	assert.ErrorContains(t, err, "1025 bytes, over the 1024-byte state limit")

	seven := uint32(7)
	_, err = c.ReplaceState(ctx, "a", []byte(`{}`), &seven)
	assert.ErrorIs(t, err, core.ErrInvalidState)
	assert.ErrorContains(t, err, "reads schema 1")

	_, err = c.ResetState(ctx, "nobody")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)

	assert.Equal(t, []string{"x"}, applied(t, c, "a"), "nothing changed")
	hist, err := c.Store().ListHistory(ctx)
	require.NoError(t, err)
	assert.Empty(t, hist, "refused repairs are not recorded")
	assert.Equal(t, "ok:y", mustCall(t, c, "a", "y"), "and the actor was resumed each time")
}

func TestCheckMessageID(t *testing.T) {
	assert.NoError(t, core.CheckMessageID(""))
	assert.NoError(t, core.CheckMessageID(strings.Repeat("i", core.MaxMessageIDSize)))
	err := core.CheckMessageID(strings.Repeat("i", core.MaxMessageIDSize+1))
	assert.ErrorIs(t, err, core.ErrInvalidMessageID)
	assert.ErrorContains(t, err, "257 bytes, over the 256-byte limit")
}
