package rollout

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/internal/etcdtest"
)

// A binary stored by one member comes back byte for byte on another,
// across chunk boundaries, with mode 0700; bytes that do not match their
// sha256 are refused and leave no file; a dropped binary is gone.
func TestBinaryRoundTripsThroughEtcd(t *testing.T) {
	client, ctx := startEtcd(t)
	r := &Rollout{client: client, prefix: "/graft/bins/rollout/"}

	dir := t.TempDir()
	data := make([]byte, 2*ChunkSize+123)
	_, _ = rand.Read(data)
	src := filepath.Join(dir, "plugin")
	require.NoError(t, os.WriteFile(src, data, 0o700))
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])

	require.NoError(t, r.publishBinary(ctx, sha, src))
	require.NoError(t, r.publishBinary(ctx, sha, src), "a second publish finds it there")
	scratch := t.TempDir()
	got, err := r.fetchBinary(ctx, sha, scratch)
	require.NoError(t, err)
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, b), "the same bytes")
	fi, err := os.Stat(got)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// Tamper with a chunk: the fetch refuses it and leaves nothing.
	_, err = client.Put(ctx, r.chunkKey(sha, 1), "not the bytes")
	require.NoError(t, err)
	require.NoError(t, os.Remove(got))
	_, err = r.fetchBinary(ctx, sha, scratch)
	require.ErrorContains(t, err, "the stored bytes have sha256")
	left, err := os.ReadDir(scratch)
	require.NoError(t, err)
	assert.Empty(t, left, "no partial file is left")

	// A cache file that changed under its name is not published.
	require.NoError(t, os.WriteFile(src, []byte("changed"), 0o700))
	other := strings.Repeat("ab", 32) // a name the changed bytes do not hash to
	require.NotEqual(t, sha, other)
	require.ErrorContains(t, r.publishBinary(ctx, other, src), "the cache file changed")

	require.NoError(t, r.dropBinary(ctx, sha))
	_, err = r.fetchBinary(ctx, sha, scratch)
	require.ErrorContains(t, err, "not in etcd")
}

// startEtcd runs a one-member etcd for the test and returns a client of
// it and a context bounding the test's calls.
func startEtcd(t *testing.T) (*clientv3.Client, context.Context) {
	t.Helper()
	m := etcdtest.Start(t)
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return client, ctx
}

// The sweep deletes a stored binary that no announcement names once it
// is older than SweepAfter (a canary rolled back, a publish that lost its
// race), and keeps the ones announced, as current or as the version
// before, and those stored moments ago.
func TestSweepKeepsOnlyWhatAnnouncementsName(t *testing.T) {
	client, ctx := startEtcd(t)
	r, err := New(Config{Client: client, Prefix: "/graft/sweep", Member: "m0", Upgrader: &fakeUp{}, Scratch: t.TempDir(), SweepAfter: time.Hour})
	require.NoError(t, err)
	dir := t.TempDir()
	store := func(content string) string {
		v := ver(t, dir, content)
		require.NoError(t, r.publishBinary(ctx, v.SHA, v.Path))
		return v.SHA
	}
	cur, prev, stray := store("current"), store("previous"), store("stray canary")
	_, ok, err := r.put(ctx, "b", announcement{SHA: cur, Prev: prev, Version: "2", Kind: "upgrade", By: "m0"}, 0)
	require.NoError(t, err)
	require.True(t, ok)
	has := func(sha string) bool {
		resp, err := client.Get(ctx, r.metaKey(sha))
		require.NoError(t, err)
		return len(resp.Kvs) > 0
	}

	require.NoError(t, r.sweep(ctx))
	assert.True(t, has(stray), "stored moments ago: its announcement may be on its way")

	r.cfg.SweepAfter = time.Nanosecond
	require.NoError(t, r.sweep(ctx))
	assert.False(t, has(stray), "named by no announcement, and old")
	chunks, err := client.Get(ctx, r.binKey(stray), clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, chunks.Count, "its chunks go with it")
	assert.True(t, has(cur), "what the cluster runs")
	assert.True(t, has(prev), "what a rollback goes back to")
}
