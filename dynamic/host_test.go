package dynamic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/testbin"
)

func msgs(payloads ...string) []dynamic.Message {
	out := make([]dynamic.Message, len(payloads))
	for i, p := range payloads {
		out[i] = dynamic.Message{Seq: uint64(i + 1), ID: fmt.Sprintf("m%d", i+1), Payload: []byte(p), Attempt: 1}
	}
	return out
}

func TestEchoLifecycle(t *testing.T) {
	cfg := config(t, "echo")
	cfg.Behaviour = "echo"
	m := start(t, cfg)
	ctx := context.Background()

	info := m.Info()
	require.Equal(t, "echo", info.Behaviour)
	require.Equal(t, "2.0.0", info.CodeVersion)
	require.EqualValues(t, 2, info.SchemaVersion)
	require.Equal(t, []uint32{1}, info.MigratesFrom)
	require.Equal(t, []uint32{1}, info.MigratesTo)
	require.Equal(t, dynamic.ProtocolVersion, info.Protocol)
	require.NoError(t, m.Health(ctx))

	st, err := m.Init(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Schema)

	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("hello", "fwd:b:hi", "x")})
	require.NoError(t, err)
	require.Len(t, res.Results, 3)
	require.Equal(t, "hello", string(res.Results[0].Reply))
	require.True(t, res.Results[0].HasReply)
	require.True(t, res.Results[0].StateChanged)
	require.Equal(t, []dynamic.Outgoing{{To: "b", Payload: []byte("hi")}}, res.Results[1].Outgoing)
	require.JSONEq(t, `{"count":3,"last":"x"}`, string(res.State.Data))

	// Down for rollback, up again, and a migration it does not have.
	down, err := m.Migrate(ctx, "a", res.State, 1)
	require.NoError(t, err)
	require.JSONEq(t, `{"count":3}`, string(down.Data))
	up, err := m.Migrate(ctx, "a", down, 2)
	require.NoError(t, err)
	require.JSONEq(t, `{"count":3,"last":""}`, string(up.Data))
	_, err = m.Migrate(ctx, "a", res.State, 3)
	require.ErrorIs(t, err, dynamic.ErrNoMigration)
	require.Contains(t, err.Error(), "from schema 2 to 3")

	// A batch at the old schema is migrated by the SDK on the way in.
	res, err = m.Handle(ctx, dynamic.Batch{Actor: "a", State: down, Messages: msgs("y")})
	require.NoError(t, err)
	require.JSONEq(t, `{"count":4,"last":"y"}`, string(res.State.Data))

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, m.Stop(sctx))
	<-m.Exited()
	require.ErrorIs(t, m.Err(), dynamic.ErrStopped)
	require.False(t, alive(m.Pid()))
	emptyDir(t, cfg.SocketDir)
	_, err = m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("late")})
	require.ErrorIs(t, err, dynamic.ErrStopped)
}

func TestPanicAndErrorsAreMessageResults(t *testing.T) {
	m := start(t, config(t, "faulty"))
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)

	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("a", "panic", "b", "error", "mutate", "c")})
	require.NoError(t, err)
	require.Empty(t, res.Results[0].Err)
	require.Contains(t, res.Results[1].Err, "panic in Handle: boom on request")
	require.Empty(t, res.Results[2].Err)
	require.Equal(t, "refused on request", res.Results[3].Err)
	require.Equal(t, "failed after mutating", res.Results[4].Err)
	require.False(t, res.Results[1].HasReply)
	require.True(t, res.Results[5].HasReply)
	var s struct{ Seen []string }
	require.NoError(t, json.Unmarshal(res.State.Data, &s))
	require.Equal(t, []string{"a", "b", "c"}, s.Seen, "failed messages must leave the state as it was")

	// The plugin keeps running: the next batch is handled.
	res, err = m.Handle(ctx, dynamic.Batch{Actor: "a", State: res.State, Messages: msgs("panic", "d")})
	require.NoError(t, err)
	require.Contains(t, res.Results[0].Err, "panic")
	require.Equal(t, "d", string(res.Results[1].Reply))

	// A panic in Init is an error, and the module survives it too.
	_, err = m.Init(ctx, "bad")
	require.ErrorContains(t, err, "init refuses actor bad")
	require.NoError(t, m.Health(ctx))
	require.Nil(t, m.Err())

	// The same through a first batch that asks the plugin to run Init.
	require.True(t, m.Info().InitInHandle, "an SDK plugin runs Init in a batch")
	_, err = m.Handle(ctx, dynamic.Batch{Actor: "bad", Init: true, Messages: msgs("x")})
	require.ErrorIs(t, err, dynamic.ErrInitFailed)
	require.ErrorContains(t, err, "init refuses actor bad")
	require.NoError(t, m.Health(ctx))
	require.Nil(t, m.Err())
}

// TestFirstBatchRunsInit: a batch with Init set starts from the state Init
// makes, not from the (ignored) state it carries, and a message that fails
// in it leaves Init's state.
func TestFirstBatchRunsInit(t *testing.T) {
	m := start(t, config(t, "faulty"))
	ctx := context.Background()
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", Init: true, State: dynamic.State{Schema: 9, Data: []byte("ignored")},
		Messages: msgs("a", "error", "b")})
	require.NoError(t, err)
	require.Equal(t, "refused on request", res.Results[1].Err)
	var s struct{ Seen []string }
	require.NoError(t, json.Unmarshal(res.State.Data, &s))
	require.Equal(t, []string{"a", "b"}, s.Seen)

	res, err = m.Handle(ctx, dynamic.Batch{Actor: "b", Init: true, Messages: msgs("error")})
	require.NoError(t, err)
	require.Equal(t, "refused on request", res.Results[0].Err)
	init, err := m.Init(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, init.Data, res.State.Data, "a first batch whose messages all fail ends in Init's state")
}

func TestPipelinedBatchesMatchTheirCallers(t *testing.T) {
	m := start(t, config(t, "echo"))
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for a := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := fmt.Sprintf("actor-%d", a)
			st := dynamic.State{Schema: 2, Data: []byte(`{"count":0}`)}
			for i := range 40 {
				p := fmt.Sprintf("%s/%d", actor, i)
				res, err := m.Handle(ctx, dynamic.Batch{Actor: actor, State: st, Messages: msgs(p, p+"b")})
				if err != nil {
					errs <- err
					return
				}
				if string(res.Results[0].Reply) != p || string(res.Results[1].Reply) != p+"b" {
					errs <- fmt.Errorf("%s got replies %q %q", p, res.Results[0].Reply, res.Results[1].Reply)
					return
				}
				st = res.State
			}
			if want := `{"count":80,"last":"` + actor + `/39b"}`; string(st.Data) != want {
				errs <- fmt.Errorf("%s final state %s, want %s", actor, st.Data, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type echoCaller struct{ got chan dynamic.CallRequest }

func (c echoCaller) Call(_ context.Context, req dynamic.CallRequest) ([]byte, error) {
	c.got <- req
	if req.To == "nobody" {
		return nil, errors.New("no such actor")
	}
	return []byte("answer to " + string(req.Payload)), nil
}

func TestCallFromHandlerReachesTheCaller(t *testing.T) {
	cfg := config(t, "echo")
	c := echoCaller{got: make(chan dynamic.CallRequest, 4)}
	cfg.Caller = c
	m := start(t, cfg)
	ctx := context.Background()
	st := dynamic.State{Schema: 2, Data: []byte(`{}`)}
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("call:b:question", "call:nobody:x")})
	require.NoError(t, err)
	require.Empty(t, res.Results[0].Err)
	require.Equal(t, "answer to question", string(res.Results[0].Reply))
	require.Contains(t, res.Results[1].Err, "no such actor")
	req := <-c.got
	require.Equal(t, dynamic.CallRequest{From: "a", To: "b", Payload: []byte("question"), ID: "a/m1/call/1", CallerChain: []string{"a"}}, req)
}

func TestCallWithoutCallerFails(t *testing.T) {
	m := start(t, config(t, "echo"))
	res, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 2, Data: []byte(`{}`)}, Messages: msgs("call:b:q")})
	require.NoError(t, err)
	require.Contains(t, res.Results[0].Err, "no call service")
}

func TestHangIsReportedAndModuleKilled(t *testing.T) {
	cfg := config(t, "faulty")
	cfg.HandleTimeout = 300 * time.Millisecond
	m := start(t, cfg)
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)
	pid := m.Pid()
	t0 := time.Now()
	testbin.Returns(t, 30*time.Second, "a Handle that hangs in the plugin", func() {
		_, err = m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("hang")})
	})
	var he *dynamic.HangError
	require.ErrorAs(t, err, &he)
	require.ErrorIs(t, err, dynamic.ErrHang)
	require.Equal(t, "a", he.Actor)
	require.GreaterOrEqual(t, time.Since(t0), cfg.HandleTimeout, "the hang is declared no earlier than the handle timeout")
	select {
	case <-m.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("hung module not killed")
	}
	require.ErrorIs(t, m.Err(), dynamic.ErrCrashed)
	require.Contains(t, m.Err().Error(), "killed by graft: batch")
	require.False(t, alive(pid))
	emptyDir(t, cfg.SocketDir)
}

func TestCrashIsObservedWithExitStatus(t *testing.T) {
	cfg := config(t, "faulty")
	m := start(t, cfg)
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)
	_, err = m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("exit")})
	require.ErrorIs(t, err, dynamic.ErrCrashed)
	var ce *dynamic.CrashError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 7, ce.Exit.Code)
	require.Contains(t, err.Error(), "exit status 7")
	select {
	case <-m.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Exited not closed after crash")
	}
	ex, ok := m.ExitStatus()
	require.True(t, ok)
	require.Equal(t, 7, ex.Code)
	emptyDir(t, cfg.SocketDir)
	// Stop after a crash is fine.
	require.NoError(t, m.Stop(ctx))
}

func TestBadResultsCount(t *testing.T) {
	cfg := config(t, "badresults")
	m := start(t, cfg)
	_, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", Messages: msgs("1", "2", "3")})
	require.ErrorIs(t, err, dynamic.ErrBadResponse)
	require.Contains(t, err.Error(), "batch of 3 messages")
	require.Contains(t, err.Error(), "with 2 results")
	require.Contains(t, err.Error(), cfg.Path)
}

func TestStopSIGSTOPpedPluginWithinDeadline(t *testing.T) {
	cfg := config(t, "echo")
	cfg.StopTimeout = time.Hour // only a Stop that honours its ctx's deadline returns in time
	m := start(t, cfg)
	pid := m.Pid()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var err error
	testbin.Returns(t, 30*time.Second, "Stop of a SIGSTOPped plugin, with a 1 s deadline", func() { err = m.Stop(ctx) })
	require.NoError(t, err)
	require.False(t, alive(pid))
	emptyDir(t, cfg.SocketDir)
}

func TestStopWithGrandchildHoldingStderr(t *testing.T) {
	cfg := config(t, "grandchild")
	cfg.StopTimeout = time.Hour // only a Stop that honours its ctx's deadline returns in time
	m := start(t, cfg)
	res, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")}, Messages: msgs("pid")})
	require.NoError(t, err)
	var gpid int
	_, err = fmt.Sscan(string(res.Results[0].Reply), &gpid)
	require.NoError(t, err)
	require.True(t, alive(gpid))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	testbin.Returns(t, 30*time.Second, "Stop, with a 1 s deadline, of a plugin whose grandchild holds its stderr", func() { err = m.Stop(ctx) })
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "grandchild to be gone", func() bool { return !alive(gpid) })
	require.False(t, alive(m.Pid()))
}

func TestFloodingPluginDoesNotBlockOrFloodTheLog(t *testing.T) {
	var n atomicCounter
	cfg := config(t, "flood")
	cfg.Logger = n.logger()
	cfg.OutputRate, cfg.OutputBurst = 50, 50
	m := start(t, cfg)
	t0 := time.Now()
	st := dynamic.State{Schema: 1, Data: []byte("0")}
	for i := range 200 {
		res, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: st, Messages: msgs(fmt.Sprint(i))})
		require.NoError(t, err)
		st = res.State
	}
	// Each Handle returned within its 10 s handle timeout, so the flood
	// never blocked the plugin on its output.
	require.Equal(t, "200", string(st.Data))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, m.Stop(ctx))
	// Each logged line may be preceded by one "dropped" summary.
	limit := int64(2 * (50 + 50*time.Since(t0).Seconds() + 10))
	require.Less(t, n.n.Load(), limit, "log records from a flooding plugin must be rate-limited")
	require.Greater(t, n.n.Load(), int64(10), "some of the flood must reach the log")
}

func TestKill9OfHostLeavesNoPlugin(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			cmd := execSelf(t)
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			line, err := readLine(out)
			require.NoError(t, err, "child output")
			var pid int
			_, err = fmt.Sscanf(strings.TrimSpace(line), "PID %d", &pid)
			require.NoError(t, err, "child said %q", line)
			require.True(t, alive(pid))
			require.NoError(t, cmd.Process.Kill()) // SIGKILL
			_ = cmd.Wait()
			waitFor(t, time.Second, fmt.Sprintf("plugin %d to exit after its host was killed", pid), func() bool { return !alive(pid) })
		})
	}
}

func TestStartHonoursTheCallersContext(t *testing.T) {
	script := shortDir(t) + "/silent.sh"
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755))
	cfg := config(t, "echo")
	cfg.Path = script
	// Neither the start timeout nor the script's end comes within the 30 s
	// the test waits: only the caller's context can end the start.
	cfg.StartTimeout = time.Hour
	before := children()
	const callers = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), callers)
	defer cancel()
	t0 := time.Now()
	var err error
	testbin.Returns(t, 30*time.Second, "Start with a 300 ms context", func() { _, err = dynamic.Start(ctx, cfg) })
	require.ErrorIs(t, err, dynamic.ErrStartTimeout)
	require.GreaterOrEqual(t, time.Since(t0), callers, "the start gives up no earlier than its caller's deadline")
	require.ElementsMatch(t, before, children())
}
