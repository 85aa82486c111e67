package pebblestore_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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

// The crash test re-executes this test binary as a child that enqueues and
// commits under load; the parent kills it with SIGKILL at a random moment and
// then checks the store it left behind. See TestMain for the child's entry.

const (
	envChild    = "GRAFT_MAILBOX_CHILD"
	envDir      = "GRAFT_MAILBOX_DIR"
	envRelaxed  = "GRAFT_MAILBOX_RELAXED"
	crashActors = 4
	producers   = 6
)

func TestMain(m *testing.M) {
	switch os.Getenv(envChild) {
	case "crash":
		runCrashChild()
		os.Exit(0)
	case "hold":
		runHoldChild()
		os.Exit(0)
	case "wal":
		runWALChild()
		os.Exit(0)
	case "timers":
		runTimerChild()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childOptions() mailbox.Options {
	opts := mailbox.Options{}
	if os.Getenv(envRelaxed) != "" {
		opts.Durability = mailbox.DurabilityRelaxed
	}
	return opts
}

// out writes one line per call with a single write(2), so lines stay whole
// on the pipe when the process is killed mid-way.
func out(format string, args ...any) {
	os.Stdout.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
}

func actorName(i int) string { return fmt.Sprintf("a%d", i) }

// runCrashChild enqueues from several producers with ids and commits batches
// (state = "count lastSeq", one outgoing message to "sink" and one reply per
// message), reporting every successful enqueue on stdout, until killed.
func runCrashChild() {
	ctx := context.Background()
	s, err := pebblestore.Open(os.Getenv(envDir), childOptions())
	if err != nil {
		out("error %v", err)
		return
	}
	epochs := make([]uint64, crashActors)
	for i := 0; i < crashActors; i++ {
		if _, err := s.Register(ctx, actorName(i), "b"); err != nil {
			out("error %v", err)
			return
		}
		if epochs[i], err = s.Claim(ctx, actorName(i)); err != nil {
			out("error %v", err)
			return
		}
	}
	if _, err := s.Register(ctx, "sink", "b"); err != nil {
		out("error %v", err)
		return
	}
	out("ready")
	for k := 0; k < producers; k++ {
		go func(k int) {
			for n := 0; ; n++ {
				actor := actorName((k + n) % crashActors)
				id := fmt.Sprintf("p%d-%d", k, n)
				out("try %s %s", actor, id)
				r, err := s.Enqueue(ctx, actor, mailbox.Message{ID: id, Sender: fmt.Sprintf("p%d", k), Payload: []byte(id)})
				if err != nil {
					out("error %v", err)
					return
				}
				out("ok %s %s %d", actor, id, r.Seq)
			}
		}(k)
	}
	for i := 0; i < crashActors; i++ {
		go func(i int) {
			actor := actorName(i)
			count := 0
			for {
				ms, err := s.Read(ctx, actor, 0, 32)
				if err != nil {
					out("error %v", err)
					return
				}
				if len(ms) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				c := mailbox.Commit{Actor: actor, Epoch: epochs[i], Through: ms[len(ms)-1].Seq}
				for _, m := range ms {
					c.Outgoing = append(c.Outgoing, mailbox.Outgoing{To: "sink", Message: mailbox.Message{
						ID: "fwd-" + m.ID, Sender: actor, Payload: []byte(actor + " " + m.ID)}})
					c.Replies = append(c.Replies, mailbox.Reply{MessageID: m.ID, Payload: []byte("r-" + m.ID)})
				}
				count += len(ms)
				c.State = &mailbox.State{Schema: 1, Module: "v1", Data: []byte(fmt.Sprintf("%d %d", count, c.Through))}
				if err := s.Commit(ctx, c); err != nil {
					out("error %v", err)
					return
				}
			}
		}(i)
	}
	select {}
}

// runHoldChild opens the store, says so, and waits to be killed.
func runHoldChild() {
	s, err := pebblestore.Open(os.Getenv(envDir), mailbox.Options{})
	if err != nil {
		out("error %v", err)
		return
	}
	defer s.Close()
	out("ready %d", os.Getpid())
	select {}
}

// startChild re-executes the test binary in the given child mode and waits
// for its "ready" line.
func startChild(t *testing.T, mode, dir string, relaxed bool) (*exec.Cmd, *bufio.Scanner, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envDir+"="+dir)
	if relaxed {
		cmd.Env = append(cmd.Env, envRelaxed+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		if sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
	}()
	select {
	case line := <-ready:
		require.True(t, strings.HasPrefix(line, "ready"), "child said %q", line)
		return cmd, sc, line
	case <-time.After(30 * time.Second):
		t.Fatal("child did not get ready within 30 s")
	}
	return nil, nil, ""
}

type sent struct {
	actor, id string
	seq       uint64
}

func TestCrashSync(t *testing.T)    { testCrash(t, false) }
func TestCrashRelaxed(t *testing.T) { testCrash(t, true) }

// testCrash: kill -9 a writer under load at several random moments and check
// G1 (every acknowledged enqueue is there, in order) and G2 (ack, state,
// outgoing messages and replies all-or-nothing; retries apply once).
func testCrash(t *testing.T, relaxed bool) {
	runs := 4
	if testing.Short() {
		runs = 1
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for run := 0; run < runs; run++ {
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		t.Run(fmt.Sprintf("kill-after-%s", delay), func(t *testing.T) {
			dir := t.TempDir()
			cmd, sc, _ := startChild(t, "crash", dir, relaxed)
			// Collect the child's lines; signal once it is well under load.
			var lines []string
			loaded := make(chan struct{})
			eof := make(chan struct{})
			go func() {
				defer close(eof)
				oks := 0
				for sc.Scan() {
					lines = append(lines, sc.Text())
					if strings.HasPrefix(sc.Text(), "ok ") {
						if oks++; oks == 200 {
							close(loaded)
						}
					}
				}
			}()
			select {
			case <-loaded:
			case <-eof:
				t.Fatalf("child exited before acknowledging 200 sends: %q", lines)
			case <-time.After(60 * time.Second):
				t.Fatal("child did not acknowledge 200 sends within 60 s")
			}
			time.Sleep(delay) // the kill point is random by design, not a wait for a condition
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			<-eof
			var oks []sent
			var tries []sent
			for _, line := range lines {
				f := strings.Fields(line)
				switch f[0] {
				case "ok":
					seq, err := strconv.ParseUint(f[3], 10, 64)
					require.NoError(t, err)
					oks = append(oks, sent{f[1], f[2], seq})
				case "try":
					tries = append(tries, sent{actor: f[1], id: f[2]})
				case "error":
					t.Fatalf("child failed: %s", line)
				}
			}
			require.NotEmpty(t, oks, "the child acknowledged no send before the kill")
			verifyCrashStore(t, dir, relaxed, oks, tries)
		})
	}
}

func verifyCrashStore(t *testing.T, dir string, relaxed bool, oks, tries []sent) {
	opts := mailbox.Options{}
	if relaxed {
		opts.Durability = mailbox.DurabilityRelaxed
	}
	s, err := pebblestore.Open(dir, opts)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()

	// Ack and state are atomic: the state names exactly the ack watermark.
	acked := map[string]uint64{}
	total := 0
	for i := 0; i < crashActors; i++ {
		a := actorName(i)
		st, err := s.State(ctx, a)
		require.NoError(t, err)
		stats, err := s.Stats(a)
		require.NoError(t, err)
		acked[a] = stats.Acked
		if len(st.Data) == 0 {
			assert.Zero(t, stats.Acked, "%s: acked without a state", a)
			continue
		}
		var count int
		var through uint64
		_, err = fmt.Sscanf(string(st.Data), "%d %d", &count, &through)
		require.NoError(t, err)
		assert.Equal(t, stats.Acked, through, "%s: state and ack watermark disagree", a)
		total += count
	}

	require.Positive(t, total, "no commit happened before the kill: the test proved nothing")

	// Outgoing messages are all-or-nothing with the commit that made them.
	sink, err := s.Read(ctx, "sink", 0, 1<<30)
	require.NoError(t, err)
	assert.Len(t, sink, total, "one outgoing message per applied message")
	applied := map[string]string{} // id -> actor
	for _, m := range sink {
		f := strings.Fields(string(m.Payload))
		require.Len(t, f, 2)
		_, dup := applied[f[1]]
		require.False(t, dup, "message %s applied twice", f[1])
		applied[f[1]] = f[0]
		r, err := s.Lookup(ctx, f[0], f[1])
		require.NoError(t, err)
		assert.LessOrEqual(t, r.Seq, acked[f[0]], "%s applied but not acked", f[1])
		assert.Equal(t, mailbox.OutcomeReplied, r.Outcome, "%s: reply missing", f[1])
		assert.Equal(t, "r-"+f[1], string(r.Reply))
	}

	// G1: every acknowledged enqueue is present at its sequence number.
	queued := map[string]map[uint64]string{}
	for i := 0; i < crashActors; i++ {
		a := actorName(i)
		ms, err := s.Read(ctx, a, 0, 1<<30)
		require.NoError(t, err)
		queued[a] = map[uint64]string{}
		for _, m := range ms {
			queued[a][m.Seq] = m.ID
		}
	}
	for _, o := range oks {
		r, err := s.Lookup(ctx, o.actor, o.id)
		require.NoError(t, err, "acknowledged send %s lost", o.id)
		require.Equal(t, o.seq, r.Seq)
		if o.seq <= acked[o.actor] {
			assert.Equal(t, o.actor, applied[o.id], "%s acked but never applied", o.id)
		} else {
			assert.Equal(t, o.id, queued[o.actor][o.seq], "%s not in its mailbox", o.id)
		}
	}
	checkSenderOrder(t, sink, s)

	// Retrying every send the child tried (with its id) applies nothing twice.
	for _, tr := range tries {
		for attempt := 0; attempt < 2; attempt++ {
			_, err := s.Enqueue(ctx, tr.actor, mailbox.Message{ID: tr.id, Payload: []byte(tr.id)})
			require.NoError(t, err)
		}
	}
	for i := 0; i < crashActors; i++ {
		a := actorName(i)
		ms, err := s.Read(ctx, a, 0, 1<<30)
		require.NoError(t, err)
		seen := map[string]bool{}
		for _, m := range ms {
			require.False(t, seen[m.ID], "%s queued twice after retries", m.ID)
			seen[m.ID] = true
			_, wasApplied := applied[m.ID]
			require.False(t, wasApplied, "%s queued again after it was applied", m.ID)
		}
	}
}

// checkSenderOrder: for every actor, the messages of one producer appear in
// send order across what was applied (the sink, in commit order) and what is
// still queued.
func checkSenderOrder(t *testing.T, sink []mailbox.Message, s *pebblestore.Store) {
	order := map[string][]string{} // actor -> ids in apply-then-queue order
	for _, m := range sink {
		f := strings.Fields(string(m.Payload))
		order[f[0]] = append(order[f[0]], f[1])
	}
	for i := 0; i < crashActors; i++ {
		a := actorName(i)
		ms, err := s.Read(context.Background(), a, 0, 1<<30)
		require.NoError(t, err)
		for _, m := range ms {
			order[a] = append(order[a], m.ID)
		}
		last := map[string]int{}
		for _, id := range order[a] {
			var k, n int
			_, err := fmt.Sscanf(id, "p%d-%d", &k, &n)
			require.NoError(t, err)
			p := fmt.Sprint(k)
			if prev, ok := last[p]; ok {
				require.Greater(t, n, prev, "actor %s: producer %s out of order", a, p)
			}
			last[p] = n
		}
	}
}

// TestSecondProcessIsRefused: a second process opening a store in use gets a
// clear error naming the owner's pid at once, and the store opens normally
// once the owner is killed -9 (the kernel drops the lock).
func TestSecondProcessIsRefused(t *testing.T) {
	dir := t.TempDir()
	cmd, _, line := startChild(t, "hold", dir, false)
	// The owner lives on meanwhile, so an Open that waited for the lock
	// instead of refusing would never return.
	err := returns(t, "an open of a store in use", func(context.Context) error {
		_, err := pebblestore.Open(dir, mailbox.Options{})
		return err
	})
	require.ErrorIs(t, err, mailbox.ErrInUse)
	assert.ErrorContains(t, err, fmt.Sprintf("pid %d", cmd.Process.Pid))
	assert.ErrorContains(t, err, dir)
	assert.Equal(t, fmt.Sprintf("ready %d", cmd.Process.Pid), line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	s, err := pebblestore.Open(dir, mailbox.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
