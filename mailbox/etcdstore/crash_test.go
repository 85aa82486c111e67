package etcdstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// binDir holds the etcd member command, built once.
var binDir string

// childEnv, when set, makes the test binary the writer of
// TestKillWriterUnderLoad instead of running tests: "endpoint prefix".
const childEnv = "GRAFT_ETCDSTORE_WRITER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		endpoint, prefix, _ := strings.Cut(spec, " ")
		if err := writer(endpoint, prefix); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testbin.Main(m, "graft-etcdstore-", &binDir, testbin.Pkgs("../../internal/etcdtest/member")...)
}

// ledger is the state of the load's one actor: the ids of the messages
// it handled, in order, and the last sequence number it handled.
type ledger struct {
	Through uint64   `json:"through"`
	IDs     []string `json:"ids"`
}

// handle is the load's committer: it reads what is pending, appends the
// ids to the ledger and commits ledger and ack in one commit. After an
// error (whose commit may or may not have applied) it starts again from
// the committed state.
func handle(ctx context.Context, s mailbox.Store, epoch uint64, onCommit func(ledger)) error {
	var l ledger
	reload := func() error {
		st, err := s.State(ctx, "acc")
		if err != nil {
			return err
		}
		l = ledger{}
		if len(st.Data) > 0 {
			return json.Unmarshal(st.Data, &l)
		}
		return nil
	}
	if err := reload(); err != nil {
		return err
	}
	for ctx.Err() == nil {
		ms, err := s.Read(ctx, "acc", l.Through, 64)
		if err == nil && len(ms) == 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err == nil {
			next := l
			next.IDs = append(append([]string(nil), l.IDs...), idsOf(ms)...)
			next.Through = ms[len(ms)-1].Seq
			data, _ := json.Marshal(next)
			err = s.Commit(ctx, mailbox.Commit{Actor: "acc", Epoch: epoch, Through: next.Through, State: &mailbox.State{Schema: 1, Module: "load", Data: data}})
			if err == nil {
				l = next
				onCommit(l)
				continue
			}
		}
		if errors.Is(err, mailbox.ErrFenced) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		for reload() != nil && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func idsOf(ms []mailbox.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// send enqueues one message with its id, retrying (same id, so at most
// once in the mailbox) until it is acknowledged.
func send(ctx context.Context, s mailbox.Store, id string) error {
	for {
		_, err := s.Enqueue(ctx, "acc", mailbox.Message{ID: id, Sender: "load", Payload: []byte(id)})
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify checks the store against the acknowledged ids: each one handled
// (in the ledger) or pending, exactly once; the ledger and the ack
// watermark committed together.
func verify(t *testing.T, s mailbox.Store, acked []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.State(ctx, "acc")
	require.NoError(t, err)
	var l ledger
	if len(st.Data) > 0 {
		require.NoError(t, json.Unmarshal(st.Data, &l))
	}
	pending, err := s.Read(ctx, "acc", l.Through, 1<<20)
	require.NoError(t, err)
	seen := map[string]int{}
	for _, id := range append(l.IDs, idsOf(pending)...) {
		seen[id]++
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "message %s is stored once", id)
	}
	for _, id := range acked {
		assert.Equal(t, 1, seen[id], "acknowledged message %s is handled or pending", id)
	}
	a, err := s.Actor(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, "load", a.Module)
	if len(pending) > 0 {
		assert.Equal(t, l.Through+1, pending[0].Seq, "the ack watermark moved with the ledger, in one commit")
	}
	t.Logf("%d acknowledged, %d handled, %d pending", len(acked), len(l.IDs), len(pending))
}

func openStore(t *testing.T, endpoints []string, prefix string) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: endpoints, Prefix: prefix, MaxTxnOps: etcdtest.MaxTxnOps}, mailbox.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Losing one member of three under load loses nothing acknowledged: the
// leader is killed with SIGKILL while senders and a committer run, the
// two others elect a new one, and the load goes on through them; then the
// killed member comes back and catches up.
func TestLoseOneMemberUnderLoad(t *testing.T) {
	c := etcdtest.StartCluster(t, filepath.Join(binDir, "member"), 3)
	s := openStore(t, c.Endpoints(), "/graft/lose-one")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.Register(ctx, "acc", "b")
	require.NoError(t, err)
	epoch, err := s.Claim(ctx, "acc")
	require.NoError(t, err)

	var mu sync.Mutex
	var acked []string
	var handled atomic.Int64
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = handle(lctx, s, epoch, func(l ledger) { handled.Store(int64(len(l.IDs))) }) })
	const senders, each = 4, 250
	var sent atomic.Int64
	for w := range senders {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if send(ctx, s, id) != nil {
					return
				}
				sent.Add(1)
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	testbin.WaitFor(t, time.Minute, "a third of the load", func() bool { return sent.Load() > senders*each/3 })
	leader := c.Leader(t)
	c.Kill(leader)
	t.Logf("killed the leader, member %d, after %d sends", leader, sent.Load())
	testbin.WaitFor(t, time.Minute, "the rest of the load, through the two members left", func() bool {
		return sent.Load() == senders*each
	})
	c.Restart(leader)
	c.WaitHealthy(time.Minute)
	testbin.WaitFor(t, time.Minute, "every message handled", func() bool { return handled.Load() == senders*each })
	stop()
	wg.Wait()
	verify(t, s, acked)

	// The member that was killed has every write too.
	only := openStore(t, []string{c.Endpoints()[leader]}, "/graft/lose-one")
	verify(t, only, acked)
}

// A writer process killed with SIGKILL in the middle of its load loses
// nothing it acknowledged, and leaves no half commit: the ledger and the
// ack watermark are found together.
func TestKillWriterUnderLoad(t *testing.T) {
	m := etcdtest.Start(t)
	prefix := "/graft/kill-writer"
	for round := range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+m.Endpoint+" "+prefix)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 150 {
			if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
				acked = append(acked, id)
			}
		}
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		t.Logf("round %d: killed the writer after %d acknowledged sends", round, len(acked))
		s := openStore(t, []string{m.Endpoint}, prefix)
		verify(t, s, acked)
		require.NoError(t, s.Close())
	}
}

// writer is the child of TestKillWriterUnderLoad: it claims the actor,
// commits in the background and sends with new ids, printing each id once
// it is acknowledged, until it is killed.
func writer(endpoint, prefix string) error {
	ctx := context.Background()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Prefix: prefix, MaxTxnOps: etcdtest.MaxTxnOps}, mailbox.Options{})
	if err != nil {
		return err
	}
	if _, err := s.Register(ctx, "acc", "b"); err != nil {
		return err
	}
	epoch, err := s.Claim(ctx, "acc")
	if err != nil {
		return err
	}
	go func() { _ = handle(ctx, s, epoch, func(ledger) {}) }()
	run := time.Now().UnixNano()
	for i := 0; ; i++ {
		id := fmt.Sprintf("r%d-%d", run, i)
		if err := send(ctx, s, id); err != nil {
			return err
		}
		fmt.Println("acked", id)
	}
}
