package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/internal/testbin"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// droppingCore is a control socket whose "core" takes each request and
// drops the connection without answering, as a core killed mid-request
// does. With readFirst false it drops the connection at once.
func droppingCore(t *testing.T, readFirst bool) string {
	t.Helper()
	sock := filepath.Join(testbin.ShortDir(t), "graft.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			if readFirst {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if req, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					_, _ = io.Copy(io.Discard, req.Body)
				}
			}
			conn.Close()
		}
	}()
	return sock
}

// A send or call whose connection drops before the core answered may or
// may not be durable; the error says so and how to retry safely.
func TestDroppedSendIsReportedAsUncertain(t *testing.T) {
	for _, readFirst := range []bool{true, false} {
		name := map[bool]string{true: "after-the-request", false: "at-once"}[readFirst]
		t.Run(name, func(t *testing.T) {
			c := api.NewClient(droppingCore(t, readFirst))
			defer c.Close()
			ctx := ctxFor(t, 10*time.Second)

			_, err := c.Send(ctx, "orders", api.SendRequest{Text: "x", ID: "req-1"})
			require.Error(t, err)
			t.Log(err)
			require.ErrorIs(t, err, api.ErrUncertain)
			var ue *api.UncertainError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, "send", ue.Op)
			assert.Equal(t, "orders", ue.Actor)
			assert.Contains(t, err.Error(), "may or may not be durable")
			assert.Contains(t, err.Error(), "retrying with the same id (--id req-1) is safe")

			_, err = c.Send(ctx, "orders", api.SendRequest{Text: "x"})
			require.ErrorIs(t, err, api.ErrUncertain)
			assert.Contains(t, err.Error(), "may or may not be durable")
			assert.Contains(t, err.Error(), "send with an id (--id ID)")

			after := 30.0
			_, err = c.Send(ctx, "orders", api.SendRequest{Text: "x", AfterSeconds: &after})
			require.ErrorAs(t, err, &ue)
			assert.True(t, ue.Scheduled)
			assert.Contains(t, err.Error(), "the timer may or may not be set")
			assert.Contains(t, err.Error(), "look for it with `graft timers orders` before retrying")
			_, err = c.Send(ctx, "orders", api.SendRequest{Text: "x", AfterSeconds: &after, ID: "t-1"})
			require.ErrorAs(t, err, &ue)
			assert.Contains(t, err.Error(), "the timer may or may not be set")
			assert.Contains(t, err.Error(), "retrying with the same id (--id t-1) is safe")

			_, err = c.Call(ctx, "orders", api.CallRequest{SendRequest: api.SendRequest{Text: "x", ID: "c-9"}})
			require.ErrorIs(t, err, api.ErrUncertain)
			assert.Contains(t, err.Error(), "call to \"orders\"")
			assert.Contains(t, err.Error(), "--id c-9")

			_, err = c.Status(ctx)
			require.Error(t, err)
			assert.False(t, errors.Is(err, api.ErrUncertain), "a read is not uncertain: %v", err)
		})
	}
}

// Nothing listening: nothing was sent, so nothing is uncertain.
func TestSendToNoCoreIsNotUncertain(t *testing.T) {
	c := api.NewClient(filepath.Join(testbin.ShortDir(t), "graft.sock"))
	_, err := c.Send(ctxFor(t, 5*time.Second), "a", api.SendRequest{Text: "x"})
	require.ErrorIs(t, err, api.ErrNoCore)
	assert.NotErrorIs(t, err, api.ErrUncertain)
}
