package etcdstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// etcd's limits are the store's: a write over the cluster's request size
// or operation count is refused whole, with an error that names the
// setting to raise, and the store goes on.
func TestEtcdLimitsAreNamed(t *testing.T) {
	m := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{m.Endpoint}, Prefix: "/graft/limits", MaxTxnOps: 32, MaxRequestBytes: 256 << 10},
		mailbox.Options{MaxMessageSize: 4 << 20})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Register(ctx, "a", "b")
	require.NoError(t, err)
	ep, err := s.Claim(ctx, "a")
	require.NoError(t, err)

	_, err = s.Enqueue(ctx, "a", mailbox.Message{Payload: []byte(strings.Repeat("x", 300<<10))})
	require.ErrorIs(t, err, mailbox.ErrTooLarge)
	assert.Contains(t, err.Error(), "store.max_request_bytes")
	assert.Contains(t, err.Error(), "nothing was stored")

	r, err := s.Enqueue(ctx, "a", mailbox.Message{Payload: []byte("small")})
	require.NoError(t, err)
	var out []mailbox.Outgoing
	for range 40 {
		out = append(out, mailbox.Outgoing{To: "a", Message: mailbox.Message{Payload: []byte("fan")}})
	}
	err = s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: ep, Through: r.Seq, Outgoing: out})
	require.ErrorIs(t, err, mailbox.ErrTooLarge)
	assert.Contains(t, err.Error(), "store.max_txn_ops 32")
	assert.Contains(t, err.Error(), "limits.batch_size")

	st, err := s.Stats("a")
	require.NoError(t, err)
	assert.Equal(t, uint64(0), st.Acked, "the refused commit wrote nothing")
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: ep, Through: r.Seq}), "the store goes on")
}

// A cluster over its space quota refuses writes with a *QuotaError that
// says how to free space; it is mailbox.ErrDiskFull to the core, which
// waits and retries, and nothing acknowledged before is lost. The write
// that crosses the quota is applied by etcd before it answers "no space":
// it is acknowledged, not refused.
func TestQuotaIsDiskFull(t *testing.T) {
	m := etcdtest.StartWithQuota(t, 2<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{m.Endpoint}, Prefix: "/graft/quota", MaxTxnOps: etcdtest.MaxTxnOps}, mailbox.Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Register(ctx, "a", "b")
	require.NoError(t, err)
	var acked int
	for acked = 0; acked < 100; acked++ {
		_, err = s.Enqueue(ctx, "a", mailbox.Message{Payload: []byte(strings.Repeat("y", 100<<10))})
		if err != nil {
			break
		}
	}
	require.Error(t, err, "2 MiB of quota cannot hold 10 MB of messages")
	assert.ErrorIs(t, err, mailbox.ErrDiskFull)
	var qe *etcdstore.QuotaError
	require.ErrorAs(t, err, &qe)
	assert.Contains(t, err.Error(), "etcdctl alarm disarm")
	ms, err := s.Read(ctx, "a", 0, 1000)
	require.NoError(t, err, "reads go on")
	assert.Equal(t, acked, len(ms), "every acknowledged message is kept, and nothing refused")
}

// No member at the endpoints: Open fails after the dial timeout with one
// error that names the endpoints and the settings to check.
func TestNoMemberAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/graft/none", DialTimeout: time.Second}, mailbox.Options{})
	require.ErrorIs(t, err, etcdstore.ErrUnavailable)
	assert.ErrorContains(t, err, "http://127.0.0.1:1")
	assert.ErrorContains(t, err, "store.endpoints")
}

// An endpoint whose host name does not resolve is named as a likely typo,
// not only as an etcd that is down; the error is still ErrUnavailable, so
// the core keeps waiting (a name may come to resolve).
func TestUnresolvedEndpointIsNamed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := etcdstore.Ping(ctx, etcdstore.Config{Endpoints: []string{"http://etcd-typo.invalid:2379"}, Prefix: "/graft/x", DialTimeout: 500 * time.Millisecond})
	require.Error(t, err)
	assert.ErrorIs(t, err, etcdstore.ErrUnavailable)
	assert.Contains(t, err.Error(), `check store.endpoints for a typo: http://etcd-typo.invalid:2379 (host "etcd-typo.invalid" does not resolve)`)

	err = etcdstore.Ping(ctx, etcdstore.Config{Endpoints: []string{"127.0.0.1:1"}, Prefix: "/graft/x", DialTimeout: 500 * time.Millisecond})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "typo", "an address is no name to resolve")
}

// Credentials against an etcd without authentication are accepted by
// etcd and protect nothing: AuthOff says so, for the core to warn.
func TestCredentialsWithoutAuthAreSaid(t *testing.T) {
	m := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	off, err := etcdstore.AuthOff(ctx, etcdstore.Config{Endpoints: []string{m.Endpoint}, Prefix: "/graft/auth", Username: "graft", Password: "s3cret"})
	require.NoError(t, err)
	assert.True(t, off, "credentials given, authentication off")
	off, err = etcdstore.AuthOff(ctx, etcdstore.Config{Endpoints: []string{m.Endpoint}, Prefix: "/graft/auth"})
	require.NoError(t, err)
	assert.False(t, off, "no credentials: nothing to say")
}
