package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
)

// A handler's terminal error reaches `graft call` as a refusal: the text on
// stderr and exit status 3; with --json a "refused" response on stdout; and
// a retry with the same --id gets the same refusal without applying the
// message again.
func TestCallPrintsARefusalAndExitsThree(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	r := graft(t, "", nil, "call", "a", "refuse::insufficient funds: balance 20", "--id", "w-1", "--config", p.config)
	assert.Equal(t, exitRefused, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "insufficient funds: balance 20")
	assert.Contains(t, r.stderr, `actor "a" refused message "w-1"`)
	assert.Empty(t, r.stdout)

	r = graft(t, "", nil, "call", "a", "refuse::insufficient funds: balance 20", "--id", "w-1", "--json", "--config", p.config)
	assert.Equal(t, exitRefused, r.code, "a retry with the same id is refused again; stderr: %s", r.stderr)
	var resp struct {
		ID      string `json:"id"`
		Refused bool   `json:"refused"`
		Error   string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &resp), r.stdout)
	assert.True(t, resp.Refused)
	assert.Equal(t, "insufficient funds: balance 20", resp.Error)
	assert.Equal(t, "w-1", resp.ID)

	// That the retry is not applied again is core's TestTerminalErrorIsTheOutcome.

	// A plain reply carries its text as well as base64 in --json.
	out := p.ok(t, "call", "a", "hello", "--json")
	var ok struct {
		Reply []byte `json:"reply"`
		Text  string `json:"text"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ok))
	assert.Equal(t, "ok:hello", ok.Text)
	assert.Equal(t, "ok:hello", string(ok.Reply))
}

// An id reused with another payload is refused, on send and on call, with
// one error showing both digests and exit 1; the API answers 409 id_reused;
// an identical retry is still a duplicate.
func TestIDReusedWithAnotherPayloadIsRefused(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a", "b"})
	p.ok(t, "send", "a", "first", "--id", "X1")
	r := graft(t, "", nil, "send", "a", "second", "--id", "X1", "--config", p.config)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, `message id "X1" of actor "a" was first used`)
	assert.Contains(t, r.stderr, "nothing was stored")
	r = graft(t, "", nil, "call", "a", "third", "--id", "X1", "--config", p.config)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "another payload")
	out := p.ok(t, "send", "a", "first", "--id", "X1")
	assert.Contains(t, out, "duplicate")

	c := control.NewClient(p.socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Send(ctx, "a", control.SendRequest{Text: "fourth", ID: "X1"})
	var ae *control.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusConflict, ae.Status)
	assert.Equal(t, control.CodeIDReused, ae.Code)
}
