// Package etcdtest runs real etcd members for graft's tests and
// benchmarks: in the test process, through go.etcd.io/etcd/server/v3/embed,
// or as separate processes (this package's member command, built from
// the module's own source) when a test must kill -9 a member. Nothing is
// downloaded or installed: the etcd server is a Go dependency of the
// module like any other.
package etcdtest

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MaxTxnOps is the --max-txn-ops graft's test members run with: graft's
// commit of a 64-message batch needs more than etcd's default 128 (see
// mailbox/etcdstore's doc), which an operator raises the same way.
const MaxTxnOps = 4096

// Member is one running in-process etcd member.
type Member struct {
	// Endpoint is its client URL.
	Endpoint string
	etcd     *embed.Etcd
}

// Start runs a one-member etcd cluster in the test process, with its
// data in a temporary folder, and stops it when the test ends.
func Start(t testing.TB) *Member { return StartWithQuota(t, 0) }

// StartWithQuota is Start with the database's space quota
// (--quota-backend-bytes) set to quota bytes (0: etcd's default).
func StartWithQuota(t testing.TB, quota int64) *Member {
	t.Helper()
	m, err := startIn(t.TempDir(), quota)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// StartIn runs a one-member etcd cluster with its data in dir, on free
// loopback ports.
func StartIn(dir string) (*Member, error) { return startIn(dir, 0) }

func startIn(dir string, quota int64) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.QuotaBackendBytes = quota
	cfg.Dir = dir
	local := func() []url.URL { u, _ := url.Parse("http://127.0.0.1:0"); return []url.URL{*u} }
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = local(), local()
	cfg.ListenPeerUrls = local()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.MaxTxnOps = MaxTxnOps
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s was not ready within 30s", dir)
	}
	return &Member{Endpoint: "http://" + e.Clients[0].Addr().String(), etcd: e}, nil
}

// Close stops the member.
func (m *Member) Close() { m.etcd.Close() }
