package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// effectsConfig is a core with the effects behaviour (plain, "effects")
// and the same binary as the virtual behaviour "acct", with the named
// actors of behaviour effects. Marker files go to dir/markers.
func effectsConfig(t testing.TB, dir string, actors ...string) core.Config {
	markers := filepath.Join(dir, "markers")
	if err := os.MkdirAll(markers, 0o700); err != nil {
		panic(err)
	}
	b := func(name string, virtual bool) core.BehaviourConfig {
		return core.BehaviourConfig{Binary: bin("effects"), HandleTimeout: 10 * time.Second, StopTimeout: 2 * time.Second, Virtual: virtual,
			Env: []string{"EFFECTS_MARKERS=" + markers, "EFFECTS_NAME=" + name}}
	}
	cfg := core.Config{
		OpenStore:   storeOpener(filepath.Join(dir, "store"), mailbox.DurabilitySync),
		Behaviours:  map[string]core.BehaviourConfig{"effects": b("effects", false), "acct": b("acct", true)},
		MaxAttempts: 3,
		SocketDir:   os.TempDir(),
	}
	if t != nil {
		cfg.Logger = testLogger(t)
	}
	for _, a := range actors {
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: a, Behaviour: "effects"})
	}
	return cfg
}

// record is what the effects behaviour applied: its "init", payloads, and
// timers' messages with the time each was handled.
type record struct {
	applied []string
	timers  map[string][]time.Time // body -> when each delivery was handled
}

// stateOf decodes actor's committed effects state (zero if none yet).
func stateOf(t testing.TB, c *core.Core, actor string) record {
	t.Helper()
	r := record{timers: map[string][]time.Time{}}
	st, err := c.Store().State(context.Background(), actor)
	if err != nil || len(st.Data) == 0 {
		return r
	}
	var s struct {
		Applied []string `json:"applied"`
	}
	require.NoError(t, json.Unmarshal(st.Data, &s))
	r.applied = s.Applied
	for _, e := range s.Applied {
		if body, ok := strings.CutPrefix(e, "timer:"); ok {
			i := strings.LastIndex(body, "@")
			ns, err := strconv.ParseInt(body[i+1:], 10, 64)
			require.NoError(t, err)
			r.timers[body[:i]] = append(r.timers[body[:i]], time.Unix(0, ns))
		}
	}
	return r
}

// count is how often a "count:" message at seq was handled by actor.
func count(t testing.TB, dir, actor string, seq uint64) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "markers", fmt.Sprintf("count-%d-%s", seq, actor)))
	return len(b)
}

// registered counts the registry's records of name.
func registered(t testing.TB, c *core.Core, name string) int {
	t.Helper()
	list, err := c.Store().Actors(context.Background())
	require.NoError(t, err)
	n := 0
	for _, a := range list {
		if a.Name == name {
			n++
		}
	}
	return n
}

func listed(t testing.TB, c *core.Core, name string) bool {
	t.Helper()
	list, err := c.Status(context.Background())
	require.NoError(t, err)
	return slices.ContainsFunc(list, func(s core.ActorStatus) bool { return s.Name == name })
}

// Spawn from outside: created once, a no-op the second time, refused
// with a clear error for another behaviour, an unknown behaviour, a bad
// name or a name of another behaviour's virtual namespace; the new actor
// runs Init, gets its init message first, and is supervised.
func TestSpawnFromOutside(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir(), "parent"))
	ctx := ctxFor(t, 30*time.Second)
	created, err := c.Spawn(ctx, "kid", "effects", []byte("hello"))
	require.NoError(t, err)
	assert.True(t, created)
	created, err = c.Spawn(ctx, "kid", "effects", []byte("hello"))
	require.NoError(t, err)
	assert.False(t, created, "spawning an existing actor of that behaviour is a no-op")

	_, err = c.Spawn(ctx, "kid", "acct", nil)
	require.ErrorIs(t, err, mailbox.ErrSpawnConflict)
	assert.ErrorContains(t, err, `exists with behaviour "effects"`)
	_, err = c.Spawn(ctx, "x", "nosuch", nil)
	assert.ErrorContains(t, err, `unknown behaviour "nosuch"`)
	_, err = c.Spawn(ctx, "", "effects", nil)
	assert.ErrorIs(t, err, mailbox.ErrEmptyActorName)
	_, err = c.Spawn(ctx, "acct/bob", "effects", nil)
	assert.ErrorContains(t, err, `belongs to virtual behaviour "acct"`)

	waitFor(t, 20*time.Second, "kid handles its init message", func() bool {
		return slices.Equal(stateOf(t, c, "kid").applied, []string{"init", "hello"})
	})
	reply, err := c.Call(ctx, "kid", []byte("ping"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:ping", string(reply))
	assert.Equal(t, "running", status(t, c, "kid").Status)
	a, err := c.Store().Actor(ctx, "kid")
	require.NoError(t, err)
	assert.Equal(t, mailbox.OriginSpawn, a.Origin)
	assert.Equal(t, []string{"init", "hello", "ping"}, stateOf(t, c, "kid").applied, "init delivered once")
}

// A handler's spawn and timer are committed with its effect: a batch
// redelivered after the module died before answering, and a message
// handled again alone after a later one in its batch failed, each spawn
// their actor once (Init and the init message once) and set a timer that
// fires once, no earlier than due.
func TestHandlerSpawnAndTimerOnceDespiteRedelivery(t *testing.T) {
	dir := t.TempDir()
	c := startCore(t, effectsConfig(t, dir, "parent"))
	ctx := ctxFor(t, 60*time.Second)
	const delay = 3 * time.Second

	// The module exits after computing the effects, before answering.
	began := time.Now()
	_, err := c.Call(ctx, "parent", []byte(fmt.Sprintf("count:crashonce:spawnafter:kid1:%d:ring1", delay.Milliseconds())), core.SendOptions{ID: "m1"})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, count(t, dir, "parent", 1), 2, "the message was handled again after the crash")
	pending, err := c.Timers(ctx, "parent")
	require.NoError(t, err)
	require.Len(t, pending, 1, "one timer, though the handler set it twice")
	assert.Equal(t, "kid1", pending[0].To)
	assert.False(t, pending[0].Due.Before(began.Add(delay)), "due a delay after the commit")

	// A later message in the batch fails: the first is handled again alone.
	r, err := c.Send(ctx, "parent", []byte("waitfile:go"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "parent holds in waitfile", func() bool { return status(t, c, "parent").InFlight > 0 })
	m2, err := c.Send(ctx, "parent", []byte(fmt.Sprintf("count:spawnafter:kid2:%d:ring2", delay.Milliseconds())), core.SendOptions{})
	require.NoError(t, err)
	_, err = c.Send(ctx, "parent", []byte("error"), core.SendOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "markers", "go"), nil, 0o600))
	require.Equal(t, r.Seq+1, m2.Seq)
	waitFor(t, 30*time.Second, "parent's mailbox drains", func() bool { return drained(c, "parent") })
	assert.GreaterOrEqual(t, count(t, dir, "parent", m2.Seq), 2, "handled in the batch, then alone")

	for _, kid := range []string{"kid1", "kid2"} {
		body := "ring" + kid[3:]
		waitFor(t, 30*time.Second, kid+"'s timer fires", func() bool { return len(stateOf(t, c, kid).timers[body]) > 0 })
		assert.Equal(t, 1, registered(t, c, kid))
		assert.True(t, listed(t, c, kid))
	}
	due := pending[0].Due
	// One more message to each kid: anything still queued is handled first.
	for _, kid := range []string{"kid1", "kid2"} {
		_, err := c.Call(ctx, kid, []byte("last"), core.SendOptions{})
		require.NoError(t, err)
		rec := stateOf(t, c, kid)
		body := "ring" + kid[3:]
		assert.Equal(t, []string{"init", "init-" + kid}, rec.applied[:2], "%s: Init and its init message once", kid)
		assert.Len(t, rec.applied, 4, "%s: %v", kid, rec.applied)
		require.Len(t, rec.timers[body], 1, "%s: the timer fired once", kid)
		if kid == "kid1" {
			assert.False(t, rec.timers[body][0].Before(due), "fired no earlier than due (%s < %s)", rec.timers[body][0], due)
		}
	}
	pending, err = c.Timers(ctx, "parent")
	require.NoError(t, err)
	assert.Empty(t, pending)
	spawns := 0
	for _, e := range stateOf(t, c, "parent").applied {
		if strings.HasPrefix(e, "spawnafter:") {
			spawns++
		}
	}
	assert.Equal(t, 2, spawns, "each message applied once")
}

// A handler's effect that the store would refuse fails that message alone
// (dead-lettered after max_attempts, the caller told why): a spawn of an
// unknown behaviour, of a name another behaviour has, of a bad name; a
// timer to an actor that is neither registered nor virtual.
func TestBadEffectsFailTheirMessage(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir(), "parent"))
	ctx := ctxFor(t, 60*time.Second)
	for payload, want := range map[string]string{
		"spawn:x:nosuch:":        `unknown behaviour "nosuch"`,
		"spawn:parent:acct:":     `exists with behaviour "effects"`,
		"spawn:a\x01b:effects:":  "control character",
		"spawn:acct/x:effects:":  `belongs to virtual behaviour "acct"`,
		"after:10:nosuch/x:ring": `"nosuch/x"`,
		"after:10:ghost:ring":    "unknown actor",
		"send:ghost:hi":          "unknown actor",
	} {
		_, err := c.Call(ctx, "parent", []byte(payload), core.SendOptions{})
		require.ErrorIs(t, err, core.ErrDeadLettered, payload)
		assert.ErrorContains(t, err, want, payload)
	}
	// A send and a timer to an actor spawned by the same message are fine.
	_, err := c.Call(ctx, "parent", []byte("spawnafter:fresh:10:ring"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "fresh's timer fires", func() bool { return len(stateOf(t, c, "fresh").timers["ring"]) == 1 })
	assert.Equal(t, []string{"init", "spawnafter:fresh:10:ring"}, stateOf(t, c, "parent").applied)
}

// Sixteen producers' concurrent first sends to the same virtual names
// create each actor once: Init runs once, and every message is applied
// once. A call creates one too; a name of no virtual behaviour is refused.
func TestVirtualActorsConcurrentFirstSends(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir()))
	ctx := ctxFor(t, 120*time.Second)
	const producers, names = 16, 8
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < names; i++ {
				name := fmt.Sprintf("acct/k%d", (i+p)%names)
				_, err := c.Send(ctx, name, []byte(fmt.Sprintf("p%d", p)), core.SendOptions{ID: fmt.Sprintf("p%d", p)})
				assert.NoError(t, err)
			}
		}(p)
	}
	wg.Wait()
	var all []string
	for i := 0; i < names; i++ {
		all = append(all, fmt.Sprintf("acct/k%d", i))
	}
	waitFor(t, 60*time.Second, "every virtual actor handles its messages", func() bool {
		for _, a := range all {
			if len(stateOf(t, c, a).applied) < producers+1 {
				return false
			}
		}
		return true
	})
	for _, a := range all {
		applied := stateOf(t, c, a).applied
		assert.Equal(t, "init", applied[0], "%s: Init ran first", a)
		slices.Sort(applied)
		assert.Len(t, slices.Compact(applied), producers+1, "%s: Init once and each message once: %v", a, applied)
		assert.Equal(t, 1, registered(t, c, a))
		rec, err := c.Store().Actor(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, mailbox.OriginVirtual, rec.Origin)
		assert.Equal(t, "running", status(t, c, a).Status)
	}
	reply, err := c.Call(ctx, "acct/new", []byte("hi"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:hi", string(reply))
	for _, name := range []string{"nosuch/alice", "acct/", "effects/x"} {
		_, err = c.Send(ctx, name, []byte("x"), core.SendOptions{})
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor, name)
		_, err = c.Call(ctx, name, []byte("x"), core.SendOptions{})
		assert.ErrorIs(t, err, mailbox.ErrUnknownActor, name)
	}
}

// Destroy removes an actor for good: a Call waiting on it fails naming
// it, Status no longer lists it, sends are refused, its timers are gone;
// a virtual actor destroyed is made anew, empty, by its next message. An
// actor that another running actor requires is refused.
func TestDestroyLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := effectsConfig(t, dir, "base", "user")
	cfg.Actors[1].Requires = []string{"base"}
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	_, err := c.Spawn(ctx, "gone", "effects", []byte("hello"))
	require.NoError(t, err)
	_, err = c.Call(ctx, "gone", []byte("after:3600000:gone:never"), core.SendOptions{})
	require.NoError(t, err)
	_, err = c.SendAfter(ctx, "gone", []byte("from outside"), time.Now().Add(time.Hour))
	require.NoError(t, err)
	pending, err := c.Timers(ctx, "gone")
	require.NoError(t, err)
	require.Len(t, pending, 2, "its own timer and a send scheduled to it")
	_, err = c.Send(ctx, "gone", []byte("waitfile:never"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "gone is busy", func() bool { return status(t, c, "gone").InFlight > 0 })
	called := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "gone", []byte("ping"), core.SendOptions{})
		called <- err
	}()
	waitFor(t, 10*time.Second, "the call is queued", func() bool { return status(t, c, "gone").Depth == 2 })

	require.NoError(t, c.DestroyActor(ctx, "gone"))
	select {
	case err := <-called:
		require.ErrorIs(t, err, core.ErrDestroyed)
		assert.ErrorContains(t, err, `"gone"`)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call did not fail")
	}
	assert.False(t, listed(t, c, "gone"), "Status no longer lists it")
	_, err = c.Send(ctx, "gone", []byte("x"), core.SendOptions{})
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	_, err = c.Timers(ctx, "gone")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	_, err = c.Store().State(ctx, "gone")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	assert.ErrorIs(t, c.DestroyActor(ctx, "gone"), mailbox.ErrUnknownActor, "destroyed once")
	_, err = c.Spawn(ctx, "gone", "effects", nil)
	require.NoError(t, err)
	pending, err = c.Timers(ctx, "gone")
	require.NoError(t, err)
	assert.Empty(t, pending, "a new actor of the same name inherits no timer, its own or scheduled to it")
	require.NoError(t, c.DestroyActor(ctx, "gone"))

	// A virtual actor comes back empty with its next message.
	_, err = c.Call(ctx, "acct/z", []byte("after:3600000:acct/z:never"), core.SendOptions{})
	require.NoError(t, err)
	require.NoError(t, c.DestroyActor(ctx, "acct/z"))
	pending, err = c.Timers(ctx, "acct/z")
	require.NoError(t, err)
	assert.Empty(t, pending)
	assert.False(t, listed(t, c, "acct/z"))
	_, err = c.Call(ctx, "acct/z", []byte("again"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"init", "again"}, stateOf(t, c, "acct/z").applied)

	err = c.DestroyActor(ctx, "base")
	assert.ErrorContains(t, err, "user", "a required actor is not destroyed")
	require.NoError(t, c.DestroyActor(ctx, "user"))
	require.NoError(t, c.DestroyActor(ctx, "base"), "once nothing requires it")
}

// Actors made at run time survive a restart and run again; a configured
// actor that left the config keeps its data, is not started, shows as
// "unconfigured", and is removed for good by destroy.
func TestRuntimeAndUnconfiguredActorsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := core.New(effectsConfig(t, dir, "keep", "drop"))
	require.NoError(t, err)
	ctx := ctxFor(t, 60*time.Second)
	require.NoError(t, c.Start(ctx))
	_, err = c.Spawn(ctx, "kid", "effects", []byte("hello"))
	require.NoError(t, err)
	_, err = c.Call(ctx, "acct/v", []byte("one"), core.SendOptions{})
	require.NoError(t, err)
	_, err = c.Call(ctx, "drop", []byte("one"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "kid's init", func() bool { return len(stateOf(t, c, "kid").applied) == 2 })
	require.NoError(t, c.Shutdown(ctx))

	c = startCore(t, effectsConfig(t, dir, "keep"))
	for _, a := range []string{"kid", "acct/v"} {
		_, err := c.Call(ctx, a, []byte("two"), core.SendOptions{})
		require.NoError(t, err, a)
		assert.Equal(t, "running", status(t, c, a).Status)
	}
	assert.Equal(t, []string{"init", "hello", "two"}, stateOf(t, c, "kid").applied)
	assert.Equal(t, []string{"init", "one", "two"}, stateOf(t, c, "acct/v").applied)
	assert.Equal(t, core.StatusUnconfigured, status(t, c, "drop").Status)
	_, err = c.Send(ctx, "drop", []byte("queued"), core.SendOptions{})
	require.NoError(t, err, "an unconfigured actor's mailbox still takes messages")
	assert.EqualValues(t, 1, status(t, c, "drop").Depth, "not run")
	assert.Equal(t, []string{"init", "one"}, stateOf(t, c, "drop").applied, "its data stays")
	require.NoError(t, c.DestroyActor(ctx, "drop"))
	assert.False(t, listed(t, c, "drop"))
}

// A behaviour supervisor the root restarts (after its actors kept failing
// to start) rebuilds its children from the current actors: those spawned
// before and during the outage run again.
func TestRestartedBehaviourKeepsRuntimeActors(t *testing.T) {
	dir := t.TempDir()
	cfg := effectsConfig(t, dir)
	hang := filepath.Join(dir, "hang")
	b := cfg.Behaviours["effects"]
	b.StartTimeout = 500 * time.Millisecond
	b.Env = append(b.Env, "EFFECTS_HANG="+hang)
	cfg.Behaviours["effects"] = b
	cfg.Supervision = core.SupervisionConfig{MaxRestarts: 1, Period: time.Minute, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	c := startCore(t, cfg)
	ctx := ctxFor(t, 90*time.Second)
	_, err := c.Spawn(ctx, "kid", "effects", nil)
	require.NoError(t, err)
	_, err = c.Call(ctx, "kid", []byte("one"), core.SendOptions{})
	require.NoError(t, err)

	// New module processes hang at start from now on; kill the running one.
	require.NoError(t, os.WriteFile(hang, nil, 0o600))
	_, err = c.Send(ctx, "kid", []byte("crash"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "kid stops running", func() bool { return status(t, c, "kid").Status != "running" })
	_, err = c.Spawn(ctx, "late", "effects", nil)
	require.NoError(t, err)
	require.NoError(t, os.Remove(hang))

	for _, a := range []string{"kid", "late"} {
		waitFor(t, 60*time.Second, a+" runs again", func() bool { return status(t, c, a).Status == "running" })
		_, err := c.Call(ctx, a, []byte("two"), core.SendOptions{})
		require.NoError(t, err, a)
	}
	assert.Contains(t, stateOf(t, c, "kid").applied, "two")
}

// A virtual actor created by a send before Start is supervised by Start.
func TestVirtualSendBeforeStart(t *testing.T) {
	c, err := core.New(effectsConfig(t, t.TempDir()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })
	ctx := ctxFor(t, 30*time.Second)
	_, err = c.Send(ctx, "acct/early", []byte("first"), core.SendOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	reply, err := c.Call(ctx, "acct/early", []byte("second"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:second", string(reply))
	assert.Equal(t, []string{"init", "first", "second"}, stateOf(t, c, "acct/early").applied)
}
