package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
)

// A core on the etcd backend, end to end with real plugin processes and a
// real etcd member: messages, a call's stored reply, a kill -9 of the core
// and a new core on the same etcd, then an upgrade with its state
// migration and its history record, all kept in etcd.
func TestRunOnEtcd(t *testing.T) {
	m := etcdtest.Start(t)
	path := etcdKVConfig(t, m.Endpoint, "/graft/run-on-etcd", "", "  - {name: k0, behaviour: kv}\n  - {name: k1, behaviour: kv, process: own}\n")
	p := startGraftAt(t, path, []string{"k0", "k1"})
	assert.Equal(t, "v1:1", p.ok(t, "call", "k0", "hello", "--id", "c-1"))
	for i := range 20 {
		p.ok(t, "send", "k1", fmt.Sprintf("m%d", i), "--id", fmt.Sprintf("s-%d", i))
	}

	require.NoError(t, p.cmd.Process.Kill()) // kill -9
	<-p.exited
	p2 := startGraftAt(t, path, []string{"k0", "k1"})
	testbin.WaitFor(t, 30*time.Second, "k1 handled its 20 messages", func() bool {
		return p2.status(t)["k1"].Depth == 0
	})
	assert.Equal(t, "v1:21", p2.ok(t, "call", "k1", "count"), "every message sent before the crash handled once")
	assert.Equal(t, "v1:1", p2.ok(t, "call", "k0", "hello", "--id", "c-1"), "the stored reply survives the crash: applied once")
	assert.Equal(t, "v1:2", p2.ok(t, "call", "k0", "again"))
	for i := range 20 { // resent after the crash: each id is a duplicate, nothing new is queued
		out := p2.ok(t, "send", "k1", fmt.Sprintf("m%d", i), "--id", fmt.Sprintf("s-%d", i))
		assert.Contains(t, out, "duplicate")
	}

	out := p2.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	assert.Contains(t, out, "completed (2 actors)")
	assert.True(t, strings.HasPrefix(p2.ok(t, "call", "k0", "after"), "v2:"), "k0 runs v2 with its state migrated")
	assert.Contains(t, p2.ok(t, "history"), "completed")
}

// A core whose etcd cluster does not answer yet does not exit: its
// control socket is up and says why it holds no actors, other requests
// are refused with that reason, and it starts by itself once etcd runs.
// A SIGTERM while it waits is a clean stop.
func TestRunWaitsForEtcd(t *testing.T) {
	addr := etcdtest.FreeAddr(t)
	path := etcdKVConfig(t, "http://"+addr, "/graft/waits", "  dial_timeout: 1s\n", "  - {name: k0, behaviour: kv}\n")

	waiting := func(p *coreProc) string {
		var st control.Status
		require.NoError(t, json.Unmarshal([]byte(p.ok(t, "status", "--json")), &st))
		return st.Waiting
	}
	first := startGraftAt(t, path, nil) // returns once the socket answers
	assert.Contains(t, waiting(first), "http://"+addr, "status names the endpoint it waits for")
	assert.Contains(t, first.ok(t, "status"), "holds no actors")
	r := graft(t, "", nil, "send", "k0", "early", "--config", path)
	assert.NotEqual(t, 0, r.code, "a send while the core waits is refused")
	assert.Contains(t, r.stderr, "has not started")
	testbin.WaitFor(t, 30*time.Second, "a second attempt", func() bool {
		return strings.Contains(waiting(first), "attempt 2")
	})
	first.stop(t) // requires exit code 0
	require.Contains(t, first.logs.String(), "stopped before it started")

	second := startGraftAt(t, path, nil)
	require.NotEmpty(t, waiting(second))
	etcdtest.StartAt(t, addr)
	testbin.WaitFor(t, 60*time.Second, "k0 running once etcd answers", func() bool {
		return second.status(t)["k0"].Status == "running"
	})
	assert.Empty(t, waiting(second))
	assert.Equal(t, "v1:1", second.ok(t, "call", "k0", "hello"))
}

// A SIGTERM while the core's first try to reach etcd is still dialling
// (up to store.dial_timeout) is a clean stop as well: exit 0, the control
// socket and its lock removed.
func TestRunStoppedDuringItsFirstDialIsClean(t *testing.T) {
	path := etcdKVConfig(t, "http://"+etcdtest.FreeAddr(t), "/graft/first-dial", "  dial_timeout: 20s\n", "  - {name: k0, behaviour: kv}\n")
	p := &coreProc{logs: &testbin.Buffer{}, config: path, exited: make(chan struct{})}
	p.cmd = exec.Command(graftBin(), "run", "--config", path, "--log-format", "json")
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	testbin.WaitFor(t, 30*time.Second, "the core past its containment, dialling etcd", func() bool {
		return p.logLine("plugin processes contained") != nil
	})
	p.stop(t) // SIGTERM; requires exit code 0 within 20s
	assert.Contains(t, p.logs.String(), "stopped before it started")
	left, err := os.ReadDir(filepath.Join(filepath.Dir(path), "run"))
	require.NoError(t, err)
	for _, e := range left {
		assert.NotEqual(t, "graft.sock", e.Name(), "the control socket is gone (its lock file stays, emptied)")
	}
}

// etcdKVConfig writes the config of a core on the etcd store at endpoint
// and prefix (storeExtra: more lines of its store section) with the kv
// behaviour (v1) and actors, and returns its path.
func etcdKVConfig(t *testing.T, endpoint, prefix, storeExtra, actors string) string {
	t.Helper()
	dir, src := kvSource(t)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store:
  path: ./data
  backend: etcd
  endpoints: [%s]
  prefix: %s
  max_txn_ops: %d
%scontrol: {dir: ./run}
behaviours:
  kv: {binary: %s}
actors:
%s`, endpoint, prefix, etcdtest.MaxTxnOps, storeExtra, src, actors)), 0o644))
	return path
}
