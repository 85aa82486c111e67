package control_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/core/control/api"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

var pluginDir string

func TestMain(m *testing.M) {
	testbin.Main(m, "graft-control-plugins-", &pluginDir, testbin.Pkgs("../testdata/recorder", "../testdata/hangstart")...)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// harness is a real core with a control server on a real socket.
type harness struct {
	core   *core.Core
	client *control.Client
	socket string
}

// startCore runs a core with the given behaviours and actors behind a
// control server; start says whether to wait for the actors' first start.
func startCore(t *testing.T, behaviours map[string]core.BehaviourConfig, actors []core.ActorConfig, upgrader control.Upgrader) *harness {
	t.Helper()
	dir := testbin.ShortDir(t)
	sock := filepath.Join(dir, "run", "graft.sock")
	l, err := control.Listen(sock)
	require.NoError(t, err)
	c, err := core.New(core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			return pebblestore.Open(filepath.Join(dir, "store"), opts)
		},
		Behaviours: behaviours, Actors: actors, MaxAttempts: 2,
		SocketDir: dir, Logger: quiet(),
	})
	require.NoError(t, err)
	srv := control.NewServer(control.Options{Runtime: c, Upgrader: upgrader, Logger: quiet(),
		Info: control.CoreInfo{PID: os.Getpid(), Socket: sock, Started: time.Now()}})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	// Start in the background: a hanging start must not keep the API away.
	startCtx, cancelStart := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- c.Start(startCtx) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cancelStart()
		if err := <-started; err != nil {
			t.Logf("start (cancelled on purpose): %v", err)
		}
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-served)
		_ = c.Shutdown(ctx)
	})
	cl := control.NewClient(sock)
	t.Cleanup(cl.Close)
	return &harness{core: c, client: cl, socket: sock}
}

// waitRunning waits until each named actor reports running.
func (h *harness) waitRunning(t *testing.T, names ...string) {
	t.Helper()
	testbin.WaitFor(t, 30*time.Second, fmt.Sprintf("actors %v running", names), func() bool {
		st, err := h.client.Status(ctxFor(t, 5*time.Second))
		if err != nil {
			return false
		}
		for _, n := range names {
			if statusOf(st, n) != "running" {
				return false
			}
		}
		return true
	})
}

func recorder() map[string]core.BehaviourConfig {
	return map[string]core.BehaviourConfig{"recorder": {Binary: filepath.Join(pluginDir, "recorder"), HandleTimeout: 5 * time.Second}}
}

func TestSocketIsOwnerOnlyAndSecondCoreRefused(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	fi, err := os.Stat(h.socket)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, fi.Mode().Type())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "socket is owner-only")
	di, err := os.Stat(filepath.Dir(h.socket))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	_, err = control.Listen(h.socket)
	require.Error(t, err)
	assert.ErrorIs(t, err, control.ErrRunning)
	assert.Contains(t, err.Error(), "another graft core is running on "+h.socket)

	// The refused attempt left the running core's socket alone.
	_, err = h.client.Info(ctxFor(t, 5*time.Second))
	require.NoError(t, err)
}

// TestStaleSocketReplaced: a socket file whose owner died (nobody holds
// the lock, nobody answers) is replaced.
func TestStaleSocketReplaced(t *testing.T) {
	dir := testbin.ShortDir(t)
	sock := filepath.Join(dir, "graft.sock")
	// A dead core's leftovers: a socket file nobody listens on, and its lock file.
	old, err := net.Listen("unix", sock)
	require.NoError(t, err)
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, old.Close())
	require.NoError(t, os.WriteFile(sock+".lock", []byte("999999\n"), 0o600))
	_, err = os.Stat(sock)
	require.NoError(t, err, "the stale socket file exists")

	l, err := control.Listen(sock)
	require.NoError(t, err)
	defer l.Close()
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	require.NoError(t, err, "the new socket answers")
	c.Close()

	require.NoError(t, l.Close())
	_, err = os.Stat(sock)
	assert.True(t, os.IsNotExist(err), "Close removes the socket")
	l2, err := control.Listen(sock)
	require.NoError(t, err, "the lock is released on Close")
	l2.Close()
}

// TestSocketHeldByForeignListenerRefused: a live socket refuses a new core
// even if its owner takes no lock.
func TestSocketHeldByForeignListenerRefused(t *testing.T) {
	sock := filepath.Join(testbin.ShortDir(t), "graft.sock")
	other, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer other.Close()
	_, err = control.Listen(sock)
	require.ErrorIs(t, err, control.ErrRunning)
}

// TestStatusAnswersWhileStartHangs: a plugin that never handshakes keeps
// its actor starting for its minute of start timeout; status answers
// meanwhile, each time saying so.
func TestStatusAnswersWhileStartHangs(t *testing.T) {
	behaviours := recorder()
	behaviours["hang"] = core.BehaviourConfig{Binary: filepath.Join(pluginDir, "hangstart"), StartTimeout: time.Minute}
	h := startCore(t, behaviours, []core.ActorConfig{{Name: "stuck", Behaviour: "hang"}, {Name: "fine", Behaviour: "recorder"}}, nil)

	// Wait until the hanging start is under way (the actor reports starting).
	testbin.WaitFor(t, 10*time.Second, "actor stuck is starting", func() bool {
		st, err := h.client.Status(ctxFor(t, 5*time.Second))
		return err == nil && statusOf(st, "stuck") == "starting"
	})
	// Each call's 10 s is a guard well inside the start's minute, not a
	// figure to meet: a status that waited for the start would miss it, and
	// one that answers says the actor is still starting.
	for i := 0; i < 20; i++ {
		st, err := h.client.Status(ctxFor(t, 10*time.Second))
		require.NoError(t, err, "status answers while a start hangs")
		require.Equal(t, "starting", statusOf(st, "stuck"))
	}
	// Sends to other actors and to the stuck one are durable meanwhile.
	_, err := h.client.Send(ctxFor(t, 10*time.Second), "stuck", control.SendRequest{Text: "queued"})
	require.NoError(t, err)
	reply, err := h.client.Call(ctxFor(t, 20*time.Second), "fine", control.CallRequest{SendRequest: control.SendRequest{Text: "hi"}})
	require.NoError(t, err)
	assert.Equal(t, "ok:hi", string(reply.Reply))
}

func statusOf(st control.Status, actor string) string {
	for _, a := range st.Actors {
		if a.Name == actor {
			return a.Status
		}
	}
	return ""
}

func TestSendCallAndIdempotentRetry(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 30*time.Second)

	sr, err := h.client.Send(ctx, "a", control.SendRequest{Payload: []byte("one"), ID: "s1"})
	require.NoError(t, err)
	assert.False(t, sr.Duplicate)
	sr2, err := h.client.Send(ctx, "a", control.SendRequest{Payload: []byte("one"), ID: "s1"})
	require.NoError(t, err)
	assert.True(t, sr2.Duplicate)
	assert.Equal(t, sr.Seq, sr2.Seq)

	r1, err := h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "two", ID: "c1"}})
	require.NoError(t, err)
	assert.Equal(t, "ok:two", string(r1.Reply))
	r2, err := h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "two", ID: "c1"}})
	require.NoError(t, err)
	assert.Equal(t, r1.Reply, r2.Reply)

	st, err := h.client.Status(ctx)
	require.NoError(t, err)
	require.Len(t, st.Actors, 1)
	assert.Equal(t, uint64(2), st.Actors[0].Processed, "each message applied once")
	assert.Equal(t, "running", st.Actors[0].Status)

	_, err = h.client.Send(ctx, "nobody", control.SendRequest{Text: "x"})
	var apiErr *control.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeNotFound, apiErr.Code)

	// A refusal is the call's outcome: the client returns it as its own
	// *api.RefusedError (it links no core), worded as the core's.
	_, err = h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "refuse::no funds", ID: "c2"}})
	var refused *api.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, (&core.RefusedError{Actor: "a", ID: "c2", Reason: "no funds"}).Error(), err.Error())
}

// The client refuses a name no actor can have before sending anything,
// with the store's rule and words: its own copy (package api links no
// store) agrees with mailbox.CheckActorName.
func TestClientChecksActorNamesAsTheStoreDoes(t *testing.T) {
	c := api.NewClient(filepath.Join(testbin.ShortDir(t), "graft.sock")) // nothing listens
	defer c.Close()
	names := []string{"", "a", "account/alice", ".", "..", "with space", "名前", "tab\there", "nul\x00", "del\x7f",
		strings.Repeat("x", 255), strings.Repeat("x", 256), strings.Repeat("é", 200)}
	for _, name := range names {
		_, err := c.Send(ctxFor(t, 5*time.Second), name, api.SendRequest{Text: "x"})
		if want := mailbox.CheckActorName(name); want != nil {
			assert.EqualError(t, err, fmt.Sprintf("cannot address actor %q: %v", name, want))
		} else {
			assert.ErrorIs(t, err, api.ErrNoCore, "name %q passes the check and is sent", name)
		}
	}
}

func TestCallTimeoutNamesTheID(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, h.client.Stop(ctx, "a"))
	_, err := h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "later", ID: "slow"}, TimeoutMS: 50})
	var apiErr *control.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeTimeout, apiErr.Code)
	assert.Contains(t, err.Error(), `"slow"`)
	require.NoError(t, h.client.Start(ctx, "a"))
	r, err := h.client.Call(ctx, "a", control.CallRequest{SendRequest: control.SendRequest{Text: "later", ID: "slow"}})
	require.NoError(t, err)
	assert.Equal(t, "ok:later", string(r.Reply))
}

func TestDeadLettersAndRetry(t *testing.T) {
	h := startCore(t, recorder(), []core.ActorConfig{{Name: "a", Behaviour: "recorder"}}, nil)
	h.waitRunning(t, "a")
	ctx := ctxFor(t, 60*time.Second)
	_, err := h.client.Send(ctx, "a", control.SendRequest{Text: "error", ID: "bad"})
	require.NoError(t, err)
	var dls []control.DeadLetter
	testbin.WaitFor(t, 30*time.Second, "the failing message is dead-lettered", func() bool {
		dls, err = h.client.DeadLetters(ctx, "a")
		return err == nil && len(dls) == 1
	})
	assert.Equal(t, "bad", dls[0].ID)
	assert.Equal(t, "error", string(dls[0].Payload))
	assert.Contains(t, dls[0].LastError, "refused on request")

	_, err = h.client.Retry(ctx, "a", control.RetryRequest{ID: "nope"})
	var apiErr *control.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeNotFound, apiErr.Code)

	rr, err := h.client.Retry(ctx, "a", control.RetryRequest{ID: "bad"})
	require.NoError(t, err)
	require.Len(t, rr.Requeued, 1)
	assert.Equal(t, dls[0].Seq, rr.Requeued[0].Seq)
	// It fails again and comes back.
	testbin.WaitFor(t, 30*time.Second, "the retried message is dead-lettered again", func() bool {
		dls, err = h.client.DeadLetters(ctx, "a")
		return err == nil && len(dls) == 1 && dls[0].Seq == rr.Requeued[0].NewSeq
	})
	rr, err = h.client.Retry(ctx, "a", control.RetryRequest{All: true})
	require.NoError(t, err)
	assert.Len(t, rr.Requeued, 1)

	_, err = h.client.DeadLetters(ctx, "ghost")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeNotFound, apiErr.Code)
}

type fakeUpgrader struct{}

func (fakeUpgrader) Upgrade(_ context.Context, b string, req control.UpgradeRequest) (mailbox.UpgradeRecord, error) {
	rec := mailbox.UpgradeRecord{Behaviour: b, Kind: "upgrade", To: req.Binary, Outcome: "completed", Canary: req.Canary}
	if req.Force {
		rec.Error = "forced"
	}
	return rec, nil
}

func (fakeUpgrader) Decide(b string, promote bool) error {
	if b != "baking" {
		return fmt.Errorf("promote %q: no canary upgrade of this behaviour is baking", b)
	}
	return nil
}

func (fakeUpgrader) InProgress() []control.UpgradeProgress {
	return []control.UpgradeProgress{{Behaviour: "baking", Kind: "upgrade", Phase: "baking", Canary: "10%", BakeLeftSeconds: 30}}
}

func (fakeUpgrader) Rollback(_ context.Context, b string) (mailbox.UpgradeRecord, error) {
	return mailbox.UpgradeRecord{}, errors.New("nothing to roll back to")
}

func (fakeUpgrader) DryRun(_ context.Context, b, bin string) (control.DryRunReport, error) {
	return control.DryRunReport{Behaviour: b, To: bin, Actors: 2, Failed: 1,
		Failures: map[string][]control.DryRunFailure{"migration failed": {{Actor: "a", Detail: "boom"}}}}, nil
}

func TestUpgradeEndpoints(t *testing.T) {
	h := startCore(t, recorder(), nil, nil)
	ctx := ctxFor(t, 10*time.Second)
	_, err := h.client.Upgrade(ctx, "recorder", "")
	var apiErr *control.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeNotImplemented, apiErr.Code)
	assert.Contains(t, err.Error(), "upgrades are not available in this build")
	_, err = h.client.Rollback(ctx, "recorder")
	require.ErrorAs(t, err, &apiErr)
	hist, err := h.client.History(ctx)
	require.NoError(t, err)
	assert.Empty(t, hist)

	h2 := startCore(t, recorder(), nil, fakeUpgrader{})
	rec, err := h2.client.Upgrade(ctx, "recorder", "/x/y")
	require.NoError(t, err)
	assert.Equal(t, "/x/y", rec.To)
	_, err = h2.client.Rollback(ctx, "recorder")
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, err.Error(), "nothing to roll back to")
	rec, err = h2.client.UpgradeWith(ctx, "recorder", control.UpgradeRequest{Binary: "/x/y", Force: true})
	require.NoError(t, err)
	assert.Equal(t, "forced", rec.Error, "force reaches the upgrader")
	rep, err := h2.client.DryRun(ctx, "recorder", "/x/z")
	require.NoError(t, err)
	assert.Equal(t, "/x/z", rep.To)
	assert.Equal(t, []control.DryRunFailure{{Actor: "a", Detail: "boom"}}, rep.Failures["migration failed"])
	_, err = h2.client.DryRun(ctx, "recorder", "relative/bin")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeBadRequest, apiErr.Code)

	// The canary's endpoints reach the upgrader, and their answers theirs.
	rec, err = h2.client.UpgradeWith(ctx, "recorder", control.UpgradeRequest{Canary: "10%", BakeSeconds: 5})
	require.NoError(t, err)
	assert.Equal(t, "10%", rec.Canary)
	_, err = h2.client.UpgradeWith(ctx, "recorder", control.UpgradeRequest{BakeSeconds: 5})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeBadRequest, apiErr.Code, "a bake without a canary")
	d, err := h2.client.Promote(ctx, "baking")
	require.NoError(t, err)
	assert.Equal(t, control.DecisionResponse{Behaviour: "baking", Decision: "promote"}, d)
	_, err = h2.client.Abort(ctx, "recorder")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, control.CodeConflict, apiErr.Code)
	ups, err := h2.client.Upgrades(ctx)
	require.NoError(t, err)
	require.Len(t, ups, 1)
	assert.Equal(t, "baking", ups[0].Phase)
	st, err := h2.client.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, ups, st.Upgrades, "status carries the upgrades in progress")
	st, err = h.client.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, []control.UpgradeProgress{}, st.Upgrades, "[] without an upgrader")
}

func TestNoCoreRunning(t *testing.T) {
	sock := filepath.Join(testbin.ShortDir(t), "graft.sock")
	_, err := control.NewClient(sock).Status(ctxFor(t, 5*time.Second))
	require.ErrorIs(t, err, control.ErrNoCore)
	assert.Equal(t, "no core is running on "+sock+": start one with `graft run --config FILE`", err.Error())
	assert.True(t, strings.HasPrefix(err.Error(), "no core is running"))
}

// What the control API gets from the core to read the store cannot write
// to it. That is first a compile-time fact (Runtime.Store is a
// mailbox.Reader, which has no write method); this shows that no type
// assertion gets the store's writes back either, while the reads work.
func TestRuntimeStoreIsReadOnly(t *testing.T) {
	dir := testbin.ShortDir(t)
	c, err := core.New(core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			return pebblestore.Open(filepath.Join(dir, "store"), opts)
		},
		Behaviours: recorder(), Actors: []core.ActorConfig{{Name: "a", Behaviour: "recorder"}},
		SocketDir: dir, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })

	var rt control.Runtime = c
	view := rt.Store()
	_, isStore := view.(mailbox.Store)
	_, queues := view.(mailbox.Queues)
	_, registry := view.(mailbox.Registry)
	_, history := view.(mailbox.History)
	assert.False(t, isStore || queues || registry || history,
		"the store view %T must not be assertable to a writing interface", view)

	rec, err := view.Actor(ctxFor(t, 5*time.Second), "a")
	require.NoError(t, err)
	assert.Equal(t, "recorder", rec.Behaviour)
}
