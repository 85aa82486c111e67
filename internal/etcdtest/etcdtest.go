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
	"path/filepath"
	"strings"
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
	m, err := startIn(t.TempDir(), quota, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// StartIn runs a one-member etcd cluster with its data in dir, on free
// loopback ports.
func StartIn(dir string) (*Member, error) { return startIn(dir, 0, "127.0.0.1:0") }

// StartAt is Start with the member's client URL at addr (host:port), for
// a test that points a core at a member before the member runs.
func StartAt(t testing.TB, addr string) *Member {
	t.Helper()
	m, err := startIn(t.TempDir(), 0, addr)
	if err != nil {
		t.Fatalf("start etcd at %s: %v", addr, err)
	}
	t.Cleanup(m.Close)
	return m
}

// FreeAddr is a loopback host:port nothing listens on at the moment.
func FreeAddr(t testing.TB) string { return freeAddr(t) }

func startIn(dir string, quota int64, clientAddr string) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.QuotaBackendBytes = quota
	cfg.Dir = dir
	local := func(hostport string) []url.URL { u, _ := url.Parse("http://" + hostport); return []url.URL{*u} }
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = local(clientAddr), local(clientAddr)
	cfg.ListenPeerUrls = local("127.0.0.1:0")
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

// StartEmbeddedCluster runs an n-member etcd cluster in the test process,
// each member with its own data folder and loopback ports, and stops it
// when the test ends: for benchmarks, where a member's process of its own
// (Cluster) is not needed.
func StartEmbeddedCluster(t testing.TB, n int) []string {
	t.Helper()
	type member struct {
		name         string
		client, peer url.URL
	}
	ms := make([]member, n)
	var initial []string
	for i := range ms {
		c, _ := url.Parse("http://" + freeAddr(t))
		p, _ := url.Parse("http://" + freeAddr(t))
		ms[i] = member{name: fmt.Sprintf("e%d", i), client: *c, peer: *p}
		initial = append(initial, ms[i].name+"="+p.String())
	}
	started := make(chan *embed.Etcd, n)
	errs := make(chan error, n)
	for _, m := range ms {
		go func() {
			cfg := embed.NewConfig()
			cfg.Name, cfg.Dir = m.name, filepath.Join(t.TempDir(), m.name)
			cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.client}, []url.URL{m.client}
			cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
			cfg.InitialCluster = strings.Join(initial, ",")
			cfg.MaxTxnOps = MaxTxnOps
			cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
			e, err := embed.StartEtcd(cfg)
			if err != nil {
				errs <- err
				return
			}
			started <- e
		}()
	}
	var endpoints []string
	for range n {
		select {
		case e := <-started:
			t.Cleanup(e.Close)
			select {
			case <-e.Server.ReadyNotify():
			case <-time.After(60 * time.Second):
				t.Fatalf("embedded etcd member not ready within 60s")
			}
		case err := <-errs:
			t.Fatalf("start embedded etcd member: %v", err)
		}
	}
	for _, m := range ms {
		endpoints = append(endpoints, m.client.String())
	}
	return endpoints
}
