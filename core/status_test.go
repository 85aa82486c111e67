package core_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
)

func statusOf(t *testing.T, c *core.Core, actor string) core.ActorStatus {
	t.Helper()
	rows, err := c.Status(ctxFor(t, 10*time.Second))
	require.NoError(t, err)
	for _, r := range rows {
		if r.Name == actor {
			return r
		}
	}
	t.Fatalf("no status row for %q", actor)
	return core.ActorStatus{}
}

// An actor that has never handled a message shows the module version and
// schema it runs on, like the actors that have, not "-" and 0.
func TestStatusOfActorWithoutStateShowsItsModule(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "busy", "idle"))
	_, err := c.Call(ctxFor(t, 20*time.Second), "busy", []byte("x"), core.SendOptions{})
	require.NoError(t, err)
	busy := statusOf(t, c, "busy")
	require.Equal(t, "1.0.0", busy.Module)
	st, err := c.Store().State(ctxFor(t, 5*time.Second), "idle")
	require.NoError(t, err)
	require.Empty(t, st.Module, "idle has no committed state")
	waitFor(t, 20*time.Second, "idle running", func() bool { return statusOf(t, c, "idle").Status == "running" })
	idle := statusOf(t, c, "idle")
	assert.Equal(t, "1.0.0", idle.Module)
	assert.Equal(t, busy.Schema, idle.Schema)
}

// syncLog collects JSON log lines written from many goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// line returns the first record with msg, or nil.
func (l *syncLog) line(msg string) map[string]any {
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

// A poison first message (the actor never committed a state) is logged
// with the module version that failed it, not module="".
func TestDeadLetterLogNamesTheModule(t *testing.T) {
	logs := &syncLog{}
	cfg := recorderConfig(t, t.TempDir(), "a")
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := startCore(t, cfg)
	_, err := c.Send(ctxFor(t, 10*time.Second), "a", []byte("error"), core.SendOptions{ID: "poison"})
	require.NoError(t, err)
	var line map[string]any
	waitFor(t, 30*time.Second, "the dead-letter log line", func() bool {
		line = logs.line("message dead-lettered")
		return line != nil
	})
	assert.Equal(t, "1.0.0", line["module"], "%v", line)
	assert.Equal(t, "a", line["actor"])
	assert.Equal(t, "recorder", line["behaviour"])
}
