package core_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// Regression tests for the run-time membership of the supervised set:
// actors created and destroyed while the core runs must never leave a
// supervised child whose actor is gone, nor make a behaviour's supervisor
// count restarts for them.

// jsonLogger logs at level and above as JSON lines into logs.
func jsonLogger(logs *syncLog, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
}

// supervisionTrouble lists the log lines that show a child of interest
// (match) restarting, failing to start or making its supervisor give up,
// and the actors that crashed.
func supervisionTrouble(l *syncLog, match func(child string) bool) []string {
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		child, _ := m["child"].(string)
		actor, _ := m["actor"].(string)
		switch {
		case (msg == "supervisor: child restarting" || msg == "supervisor: child start failed" || msg == "supervisor: child gave up") && match(child),
			msg == "actor crashed" && match(actor):
			out = append(out, sc.Text())
		}
	}
	return out
}

// inBehaviour matches the children of behaviour: its actors (all of the
// virtual behaviour's names) and its supervisor under the root.
func inBehaviour(behaviour string) func(string) bool {
	return func(child string) bool {
		return strings.HasPrefix(child, behaviour+"/") || child == "behaviour/"+behaviour
	}
}

// steadyActors makes the named actors handle a message, so that they run,
// and returns when that happened: a restart of their supervisor after it
// shows as a shorter uptime.
func steadyActors(t *testing.T, c *core.Core, names ...string) time.Time {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	for _, a := range names {
		_, err := c.Call(ctx, a, []byte("steady"), core.SendOptions{})
		require.NoError(t, err, a)
	}
	for _, a := range names {
		waitFor(t, 10*time.Second, a+" runs", func() bool { return status(t, c, a).Status == "running" })
	}
	return time.Now()
}

// checkSteady asserts that the actors ran without interruption since
// since: still running, never restarted, the same incarnation.
func checkSteady(t *testing.T, c *core.Core, since time.Time, names ...string) {
	t.Helper()
	for _, a := range names {
		elapsed := time.Since(since)
		st := status(t, c, a)
		assert.Equal(t, "running", st.Status, a)
		assert.Zero(t, st.Restarts, a)
		assert.GreaterOrEqual(t, st.Uptime, elapsed, "%s was started again (its behaviour's supervisor restarted)", a)
	}
}

// Sixteen clients each create virtual actors by a first send and destroy
// them, racing the supervision of each new actor: at once, during its
// first start, or once it runs. No destroyed actor stays supervised, and
// the behaviour's supervisor never restarts (its other actors run on,
// undisturbed).
func TestDestroyRightAfterCreate(t *testing.T) {
	logs := &syncLog{}
	cfg := effectsConfig(t, t.TempDir())
	cfg.Logger = jsonLogger(logs, slog.LevelInfo)
	c := startCore(t, cfg)
	steady := []string{"acct/steady-0", "acct/steady-1"}
	since := steadyActors(t, c, steady...)
	ctx := ctxFor(t, 120*time.Second)

	const workers, each = 16, 13 // 208 actors
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("acct/k%d-%d", w, i)
				var err error
				switch i % 3 {
				case 0, 1:
					_, err = c.Send(ctx, name, []byte("x"), core.SendOptions{})
				case 2:
					_, err = c.Call(ctx, name, []byte("x"), core.SendOptions{}) // handled: it runs
				}
				if !assert.NoError(t, err, name) {
					return
				}
				// (Not waitFor: it fails the test, which only its own
				// goroutine may do.)
				for deadline := time.Now().Add(20 * time.Second); i%3 == 1 && !core.Supervises(c, name); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						assert.Fail(t, name+" was never supervised")
						return
					}
				}
				if !assert.NoError(t, c.DestroyActor(ctx, name), name) {
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "no destroyed actor is supervised", func() bool {
		for id := range core.SupervisedChildren(c) {
			if strings.HasPrefix(id, "acct/k") {
				return false
			}
		}
		return true
	})
	for w := 0; w < workers; w++ {
		for i := 0; i < each; i++ {
			name := fmt.Sprintf("acct/k%d-%d", w, i)
			assert.Zero(t, registered(t, c, name), "%s is still in the registry", name)
			assert.False(t, core.Supervises(c, name), "%s is still in the supervised set", name)
		}
	}
	checkSteady(t, c, since, steady...)
	assert.Empty(t, supervisionTrouble(logs, inBehaviour("acct")))
	for _, a := range steady {
		_, err := c.Call(ctx, a, []byte("still"), core.SendOptions{})
		assert.NoError(t, err, a)
	}
}

// An actor destroyed after its creation became durable but before the
// store reported it (Options.Created) is not supervised by that late
// report, and its name can be created anew.
func TestDestroyBeforeCreatedReport(t *testing.T) {
	logs := &syncLog{}
	cfg := effectsConfig(t, t.TempDir())
	cfg.Logger = jsonLogger(logs, slog.LevelDebug)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	open := cfg.OpenStore
	cfg.OpenStore = func(opts mailbox.Options) (mailboxStore, error) {
		created := opts.Created
		opts.Created = func(name, behaviour string) {
			if name == "acct/p" {
				once.Do(func() { close(reached); <-release }) // the first report only
			}
			created(name, behaviour)
		}
		return open(opts)
	}
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, "acct/p", []byte("x"), core.SendOptions{})
		sent <- err
	}()
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the creation of acct/p was never reported")
	}
	require.NoError(t, c.DestroyActor(ctx, "acct/p"))
	close(release)
	require.NoError(t, <-sent)
	waitFor(t, 20*time.Second, "the late report is dealt with", func() bool {
		return logs.line("actor destroyed before its supervision began") != nil || core.Supervises(c, "acct/p")
	})
	assert.False(t, core.Supervises(c, "acct/p"), "the destroyed actor is in the supervised set")
	assert.NotContains(t, core.SupervisedChildren(c), "acct/p")
	assert.Zero(t, registered(t, c, "acct/p"))

	reply, err := c.Call(ctx, "acct/p", []byte("again"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:again", string(reply))
	assert.Equal(t, []string{"init", "again"}, stateOf(t, c, "acct/p").applied, "made anew, empty")
	assert.Empty(t, supervisionTrouble(logs, inBehaviour("acct")))
}

// A child whose actor the store no longer has and the supervised set no
// longer lists (what a behaviour supervisor rebuilt from a list taken
// just before a destroy holds) ends for good at its start: its failed
// claim is no crash, so even a supervisor that allows no restart at all
// keeps running, and its other actors with it.
func TestStaleChildOfDestroyedActorEnds(t *testing.T) {
	logs := &syncLog{}
	cfg := effectsConfig(t, t.TempDir())
	cfg.Logger = jsonLogger(logs, slog.LevelInfo)
	cfg.Supervision.MaxRestarts = -1 // any counted restart makes the behaviour's supervisor give up
	c := startCore(t, cfg)
	since := steadyActors(t, c, "acct/steady")

	core.AddStaleChild(c, "acct/ghost", "acct")
	waitFor(t, 20*time.Second, "the stale child leaves its supervisor", func() bool {
		_, there := core.SupervisedChildren(c)["acct/ghost"]
		return !there
	})
	checkSteady(t, c, since, "acct/steady")
	assert.Empty(t, supervisionTrouble(logs, inBehaviour("acct")))
	assert.Zero(t, registered(t, c, "acct/ghost"), "nothing was created for it")
}

// gatedStore holds the first commit that sends to gateTo until release is
// closed (reached is closed when it is held): the window between an
// actor's check of its batch's effects and its commit, made wide.
type gatedStore struct {
	mailbox.Store
	gateTo           string
	once             sync.Once
	reached, release chan struct{}
}

func (g *gatedStore) Commit(ctx context.Context, commits ...mailbox.Commit) error {
	for _, cm := range commits {
		for _, o := range cm.Outgoing {
			if o.To == g.gateTo {
				g.once.Do(func() { close(g.reached); <-g.release })
			}
		}
	}
	return g.Store.Commit(ctx, commits...)
}

// A send target destroyed between the sender's check of its batch and
// the commit fails that message alone, as a send to an unknown actor
// does (dead-lettered after max_attempts, the caller told which target),
// instead of crashing the sender.
func TestSendTargetDestroyedBeforeCommit(t *testing.T) {
	logs := &syncLog{}
	cfg := effectsConfig(t, t.TempDir(), "sender", "target")
	cfg.Logger = jsonLogger(logs, slog.LevelInfo)
	gate := &gatedStore{gateTo: "target", reached: make(chan struct{}), release: make(chan struct{})}
	open := cfg.OpenStore
	cfg.OpenStore = func(opts mailbox.Options) (mailboxStore, error) {
		s, err := open(opts)
		if err != nil {
			return nil, err
		}
		gate.Store = s
		return gate, nil
	}
	c := startCore(t, cfg)
	since := steadyActors(t, c, "sender", "target")
	ctx := ctxFor(t, 60*time.Second)
	called := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "sender", []byte("send:target:hi"), core.SendOptions{ID: "m1"})
		called <- err
	}()
	select {
	case <-gate.reached:
	case <-ctx.Done():
		t.Fatal("the sender never committed its send")
	}
	require.NoError(t, c.DestroyActor(ctx, "target"))
	close(gate.release)

	var err error
	select {
	case err = <-called:
	case <-ctx.Done():
		t.Fatal("the call got no answer")
	}
	require.ErrorIs(t, err, core.ErrDeadLettered)
	assert.ErrorContains(t, err, `handler sent to "target"`)
	assert.ErrorContains(t, err, "unknown actor")
	dead, err := c.Store().DeadLetters(ctx, "sender")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, "m1", dead[0].Message.ID)
	checkSteady(t, c, since, "sender")
	assert.Empty(t, supervisionTrouble(logs, func(child string) bool { return child == "sender" }))
	reply, err := c.Call(ctx, "sender", []byte("next"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:next", string(reply))
}
