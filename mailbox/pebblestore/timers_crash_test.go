package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// The timer crash test: a child commits timers (and cancels some) from an
// actor, fires them in a loop to a registered actor and to virtual ones,
// and a consumer acks what the registered one receives, forwarding it to a
// sink; the parent kills it with SIGKILL at a random moment and checks that
// every timer is pending or fired exactly once, never both, never twice,
// never before it was due.

const virtualTargets = 4

// timerOptions makes every "v/KEY" a virtual actor of behaviour "v".
func timerOptions() mailbox.Options {
	opts := childOptions()
	opts.Virtual = func(name string) (string, bool) {
		return "v", strings.HasPrefix(name, "v/") && len(name) > 2
	}
	return opts
}

// timerTarget is where timer n is sent: the registered target, or one of
// the virtual actors (created by the first timer that fires to it).
func timerTarget(n int) string {
	if n%3 == 0 {
		return fmt.Sprintf("v/%d", n%virtualTargets)
	}
	return "target"
}

// runTimerChild runs the three loops until killed, reporting "set ID",
// "cancel ID" and "fired ID" for every acknowledged commit and firing, and
// "try-cancel ID" before a commit that cancels (which the kill may leave
// durable but unacknowledged).
func runTimerChild() {
	ctx := context.Background()
	s, err := pebblestore.Open(os.Getenv(envDir), timerOptions())
	if err != nil {
		out("error %v", err)
		return
	}
	epochs := map[string]uint64{}
	for _, name := range []string{"owner", "target", "sink"} {
		if _, err := s.Register(ctx, name, "b"); err != nil {
			out("error %v", err)
			return
		}
		if epochs[name], err = s.Claim(ctx, name); err != nil {
			out("error %v", err)
			return
		}
	}
	out("ready")
	go fireLoop(ctx, s)
	go consumeLoop(ctx, s, epochs["target"])
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for n := 0; ; n++ {
		r, err := s.Enqueue(ctx, "owner", mailbox.Message{Payload: []byte("go")})
		if err != nil {
			out("error %v", err)
			return
		}
		id := fmt.Sprintf("t-%d", n)
		due := time.Now().Add(time.Duration(rng.IntN(20)) * time.Millisecond)
		c := mailbox.Commit{Actor: "owner", Epoch: epochs["owner"], Through: r.Seq, Timers: []mailbox.TimerRequest{
			{ID: id, To: timerTarget(n), Due: due, Payload: []byte(fmt.Sprintf("%s %d", id, due.UnixNano()))},
		}}
		if n%4 == 3 {
			c.CancelTimers = []string{fmt.Sprintf("t-%d", n-2)}
			out("try-cancel %s", c.CancelTimers[0])
		}
		if err := s.Commit(ctx, c); err != nil {
			out("error %v", err)
			return
		}
		out("set %s", id)
		for _, cancelled := range c.CancelTimers {
			out("cancel %s", cancelled)
		}
	}
}

func fireLoop(ctx context.Context, s *pebblestore.Store) {
	for {
		fired, err := s.FireDue(ctx, time.Now(), 8)
		if err != nil {
			out("error %v", err)
			return
		}
		for _, tm := range fired {
			out("fired %s", tm.ID)
		}
		if len(fired) == 0 {
			time.Sleep(time.Millisecond) // the timer loop's sleep until NextTimer, shortened
		}
	}
}

// consumeLoop acks what "target" receives, forwarding each timer message
// (with the time it was enqueued) to "sink" in the same commit.
func consumeLoop(ctx context.Context, s *pebblestore.Store, epoch uint64) {
	for {
		ms, err := s.Read(ctx, "target", 0, 16)
		if err != nil {
			out("error %v", err)
			return
		}
		if len(ms) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		c := mailbox.Commit{Actor: "target", Epoch: epoch, Through: ms[len(ms)-1].Seq}
		for _, m := range ms {
			c.Outgoing = append(c.Outgoing, mailbox.Outgoing{To: "sink", Message: mailbox.Message{
				Sender: "target", Payload: []byte(fmt.Sprintf("%s %d", m.Payload, m.EnqueuedAt.UnixNano()))}})
		}
		if err := s.Commit(ctx, c); err != nil {
			out("error %v", err)
			return
		}
	}
}

func TestTimerCrashSync(t *testing.T)    { testTimerCrash(t, false) }
func TestTimerCrashRelaxed(t *testing.T) { testTimerCrash(t, true) }

func testTimerCrash(t *testing.T, relaxed bool) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for run := 0; run < 2; run++ {
		delay := time.Duration(rng.IntN(200)) * time.Millisecond
		t.Run(fmt.Sprintf("kill-after-%s", delay), func(t *testing.T) {
			dir := t.TempDir()
			lines := runUntilKilled(t, "timers", dir, relaxed, "fired ", 40, delay)
			set, cancelled, fired, tried := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
			for _, line := range lines {
				f := strings.Fields(line)
				switch f[0] {
				case "set":
					set[f[1]] = true
				case "cancel":
					cancelled[f[1]] = true
				case "try-cancel":
					tried[f[1]] = true
				case "fired":
					fired[f[1]] = true
				case "error":
					t.Fatalf("child failed: %s", line)
				}
			}
			verifyTimerStore(t, dir, relaxed, set, cancelled, fired, tried)
		})
	}
}

// runUntilKilled starts a child in mode, waits until it has printed want
// lines starting with prefix, lets it run for delay more, kills it with
// SIGKILL and returns every line it printed.
func runUntilKilled(t *testing.T, mode, dir string, relaxed bool, prefix string, want int, delay time.Duration) []string {
	t.Helper()
	cmd, sc, _ := startChild(t, mode, dir, relaxed)
	var lines []string
	loaded := make(chan struct{})
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		n := 0
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), prefix) {
				if n++; n == want {
					close(loaded)
				}
			}
		}
	}()
	select {
	case <-loaded:
	case <-eof:
		t.Fatalf("child exited before printing %d %q lines: %q", want, prefix, lines)
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not print %d %q lines within 60 s", want, prefix)
	}
	time.Sleep(delay) // the kill point is random by design, not a wait for a condition
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	<-eof
	return lines
}

// timerMessage is one fired timer's message found in the store.
type timerMessage struct {
	id       string
	due, enq int64
}

// parseTimerMessage reads "ID DUE" (queued) or "ID DUE ENQUEUED" (in the
// sink, forwarded by the consumer).
func parseTimerMessage(t *testing.T, m mailbox.Message) timerMessage {
	t.Helper()
	f := strings.Fields(string(m.Payload))
	require.GreaterOrEqual(t, len(f), 2, "message %q", m.Payload)
	tm := timerMessage{id: f[0], enq: m.EnqueuedAt.UnixNano()}
	var err error
	tm.due, err = strconv.ParseInt(f[1], 10, 64)
	require.NoError(t, err)
	if len(f) == 3 {
		tm.enq, err = strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
	} else {
		assert.Equal(t, f[0], m.TimerID, "a fired message carries its timer id")
		assert.Equal(t, "owner", m.Sender)
	}
	return tm
}

// verifyTimerStore checks the store a killed timer child left: every
// message of a timer is delivered once and the timer is no longer pending;
// every acknowledged firing is delivered; every acknowledged timer is
// pending or delivered, unless a cancel of it was tried (then it may be
// neither) or acknowledged (then it is not pending).
func verifyTimerStore(t *testing.T, dir string, relaxed bool, set, cancelled, fired, tried map[string]bool) {
	opts := timerOptions()
	if relaxed {
		opts.Durability = mailbox.DurabilityRelaxed
	}
	s, err := pebblestore.Open(dir, opts)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()

	delivered := map[string]int{}
	collect := func(actor string) {
		ms, err := s.Read(ctx, actor, 0, 1<<30)
		require.NoError(t, err)
		for _, m := range ms {
			tm := parseTimerMessage(t, m)
			delivered[tm.id]++
			assert.GreaterOrEqual(t, tm.enq, tm.due, "timer %s fired before it was due", tm.id)
		}
	}
	collect("target")
	collect("sink")
	for k := 0; k < virtualTargets; k++ {
		name := fmt.Sprintf("v/%d", k)
		act, err := s.Actor(ctx, name)
		if err != nil {
			require.ErrorIs(t, err, mailbox.ErrUnknownActor)
			continue
		}
		assert.Equal(t, mailbox.OriginVirtual, act.Origin)
		collect(name)
	}
	pendingNow := map[string]bool{}
	ts, err := s.PendingTimers(ctx, "owner")
	require.NoError(t, err)
	for _, tm := range ts {
		pendingNow[tm.ID] = true
	}

	require.NotEmpty(t, fired, "no timer fired before the kill: the test proved nothing")
	for id, n := range delivered {
		require.Equal(t, 1, n, "timer %s delivered %d times", id, n)
		require.False(t, pendingNow[id], "timer %s both pending and delivered", id)
	}
	for id := range fired {
		require.Equal(t, 1, delivered[id], "timer %s fired (acknowledged) but its message is missing", id)
	}
	for id := range set {
		if cancelled[id] {
			assert.False(t, pendingNow[id], "timer %s pending after its cancel was acknowledged", id)
		}
		if tried[id] {
			continue
		}
		require.True(t, pendingNow[id] || delivered[id] == 1, "acknowledged timer %s is neither pending nor delivered", id)
	}

	// Firing what is left fires each remaining timer once.
	for {
		more, err := s.FireDue(ctx, time.Now().Add(time.Hour), 64)
		require.NoError(t, err)
		if len(more) == 0 {
			break
		}
		for _, tm := range more {
			require.True(t, pendingNow[tm.ID], "timer %s fired after the reopen but was not pending", tm.ID)
			delete(pendingNow, tm.ID)
		}
	}
	assert.Empty(t, pendingNow, "pending timers that never fired")
	_, ok := s.NextTimer()
	assert.False(t, ok)
}
