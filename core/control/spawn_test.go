package control_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// apiCode requires err to be an *APIError and returns its status and code.
func apiCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var apiErr *control.APIError
	require.ErrorAs(t, err, &apiErr)
	return apiErr.Status, apiErr.Code
}

// originOf is actor's origin in st, or "" if st does not list it.
func originOf(st control.Status, actor string) string {
	for _, a := range st.Actors {
		if a.Name == actor {
			return a.Origin
		}
	}
	return ""
}

// waitApplied waits until actor's committed state (the recorder's list of
// applied payloads) holds payload.
func (h *harness) waitApplied(t *testing.T, actor, payload string) {
	t.Helper()
	testbin.WaitFor(t, 30*time.Second, actor+" applied "+payload, func() bool {
		st, err := h.client.State(ctxFor(t, 5*time.Second), actor)
		return err == nil && strings.Contains(st.Text, `"`+payload+`"`)
	})
}

// Spawn through the API: created, then a no-op, then refused with another
// behaviour (409 spawn_conflict, naming both) or an unknown one (400);
// the spawned actor runs its first message and shows in status with its
// origin.
func TestSpawnEndpoint(t *testing.T) {
	behaviours := recorder()
	behaviours["hang"] = core.BehaviourConfig{Binary: filepath.Join(pluginDir, "hangstart"), StartTimeout: time.Minute}
	h := startCore(t, behaviours, []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 60*time.Second)

	r, err := h.client.Spawn(ctx, "x", control.SpawnRequest{Behaviour: "recorder", InitText: "first"})
	require.NoError(t, err)
	assert.Equal(t, control.SpawnResponse{Actor: "x", Behaviour: "recorder", Created: true}, r)
	h.waitApplied(t, "x", "first")

	r, err = h.client.Spawn(ctx, "x", control.SpawnRequest{Behaviour: "recorder", InitText: "again"})
	require.NoError(t, err)
	assert.False(t, r.Created, "the same spawn again changes nothing")

	_, err = h.client.Spawn(ctx, "x", control.SpawnRequest{Behaviour: "hang"})
	status, code := apiCode(t, err)
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, control.CodeSpawnConflict, code)
	assert.Contains(t, err.Error(), `with behaviour "hang": it exists with behaviour "recorder"`)

	_, err = h.client.Spawn(ctx, "y", control.SpawnRequest{Behaviour: "nosuch"})
	status, code = apiCode(t, err)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, control.CodeBadRequest, code)
	assert.Contains(t, err.Error(), `unknown behaviour "nosuch"`)

	_, err = h.client.Spawn(ctx, "y", control.SpawnRequest{})
	_, code = apiCode(t, err)
	assert.Equal(t, control.CodeBadRequest, code)
	assert.Contains(t, err.Error(), "name the behaviour")

	h.waitRunning(t, "x")
	st, err := h.client.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "spawn", originOf(st, "x"))
	assert.Equal(t, "config", originOf(st, "a"))
	assert.Empty(t, statusOf(st, "y"), "refused spawns created nothing")
	state, err := h.client.State(ctx, "x")
	require.NoError(t, err)
	assert.Equal(t, `{"applied":["first"]}`, state.Text, "the repeated spawn queued nothing")
}

// A send with after_seconds sets a durable timer that the timers endpoint
// lists and that fires once, as an ordinary message; the flags that do not
// go with it are refused with 400.
func TestScheduledSendAndTimers(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 60*time.Second)
	hour, soon := 3600.0, 0.2

	before := time.Now()
	later, err := h.client.Send(ctx, "a", control.SendRequest{Text: "later", AfterSeconds: &hour})
	require.NoError(t, err)
	assert.Equal(t, control.OutcomeScheduled, later.Outcome)
	require.NotEmpty(t, later.TimerID)
	assert.WithinRange(t, later.Due, before.Add(time.Hour), time.Now().Add(time.Hour))

	ts, err := h.client.Timers(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1)
	assert.Equal(t, later.TimerID, ts[0].ID)
	assert.Equal(t, "a", ts[0].To)
	assert.Empty(t, ts[0].Owner, "a scheduled send has no owner")
	assert.Equal(t, "later", ts[0].Text)
	assert.Equal(t, 5, ts[0].Size)
	assert.WithinDuration(t, later.Due, ts[0].Due, time.Millisecond)

	at := time.Now().Add(-time.Second) // in the past: due at once
	past, err := h.client.Send(ctx, "a", control.SendRequest{Text: "overdue", At: at})
	require.NoError(t, err)
	fired, err := h.client.Send(ctx, "a", control.SendRequest{Text: "soon", AfterSeconds: &soon})
	require.NoError(t, err)
	assert.NotEqual(t, past.TimerID, fired.TimerID)
	h.waitApplied(t, "a", "soon")
	h.waitApplied(t, "a", "overdue")
	ts, err = h.client.Timers(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1, "fired timers are no longer pending")
	assert.Equal(t, later.TimerID, ts[0].ID)

	neg := -1.0
	for name, req := range map[string]control.SendRequest{
		"both":     {Text: "x", AfterSeconds: &hour, At: time.Now()},
		"sender":   {Text: "x", AfterSeconds: &hour, Sender: "me"},
		"negative": {Text: "x", AfterSeconds: &neg},
	} {
		_, err := h.client.Send(ctx, "a", req)
		status, code := apiCode(t, err)
		assert.Equal(t, http.StatusBadRequest, status, name)
		assert.Equal(t, control.CodeBadRequest, code, name)
	}
	_, err = h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "x", AfterSeconds: &hour}})
	_, code := apiCode(t, err)
	assert.Equal(t, control.CodeBadRequest, code, "a call cannot be scheduled")

	_, err = h.client.Send(ctx, "nobody", control.SendRequest{Text: "x", AfterSeconds: &hour})
	_, code = apiCode(t, err)
	assert.Equal(t, control.CodeNotFound, code)
	_, err = h.client.Timers(ctx, "nobody")
	_, code = apiCode(t, err)
	assert.Equal(t, control.CodeNotFound, code)
}

// A scheduled send with an id is safe to retry: the retry sets no second
// timer and answers the first one's id and due time; the same id to
// another actor names another send.
func TestScheduledSendWithIDIsRetrySafe(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}, {Name: "b", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 60*time.Second)
	hour, twoHours := 3600.0, 7200.0

	first, err := h.client.Send(ctx, "a", control.SendRequest{Text: "once", AfterSeconds: &hour, ID: "remind-1"})
	require.NoError(t, err)
	assert.Equal(t, "remind-1", first.ID)
	retry, err := h.client.Send(ctx, "a", control.SendRequest{Text: "once", AfterSeconds: &twoHours, ID: "remind-1"})
	require.NoError(t, err)
	assert.Equal(t, first.TimerID, retry.TimerID, "a retry answers the same timer")
	assert.WithinDuration(t, first.Due, retry.Due, time.Millisecond, "and the due time it keeps")
	ts, err := h.client.Timers(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1, "one timer for the id")
	assert.Equal(t, first.TimerID, ts[0].ID)

	other, err := h.client.Send(ctx, "b", control.SendRequest{Text: "once", AfterSeconds: &hour, ID: "remind-1"})
	require.NoError(t, err)
	assert.NotEqual(t, first.TimerID, other.TimerID, "the id names a send to one actor")
	ts, err = h.client.Timers(ctx, "b")
	require.NoError(t, err)
	assert.Len(t, ts, 1)
}

// Destroy removes a spawned actor for good: status no longer lists it,
// and a send, its timers and its state are refused as for an unknown
// actor; stop, by contrast, keeps an actor's data.
func TestDestroyRemovesForGood(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 60*time.Second)
	_, err := h.client.Spawn(ctx, "x", control.SpawnRequest{Behaviour: "recorder", InitText: "kept?"})
	require.NoError(t, err)
	h.waitApplied(t, "x", "kept?")

	require.NoError(t, h.client.Stop(ctx, "a"))
	_, err = h.client.State(ctx, "a")
	require.NoError(t, err, "stop keeps the actor")

	require.NoError(t, h.client.Destroy(ctx, "x"))
	st, err := h.client.Status(ctx)
	require.NoError(t, err)
	assert.Empty(t, statusOf(st, "x"), "destroyed actors are not listed")
	_, err = h.client.Send(ctx, "x", control.SendRequest{Text: "y"})
	_, code := apiCode(t, err)
	assert.Equal(t, control.CodeNotFound, code)
	assert.Contains(t, err.Error(), "unknown actor")
	for _, f := range []func() error{
		func() error { _, err := h.client.Timers(ctx, "x"); return err },
		func() error { _, err := h.client.State(ctx, "x"); return err },
		func() error { return h.client.Destroy(ctx, "x") },
	} {
		_, code := apiCode(t, f())
		assert.Equal(t, control.CodeNotFound, code)
	}
}
