package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// scriptedUpgrader stands in for a member's upgrade manager: it moves
// between versions at once and calls Announce as the manager's
// BeforeMove does, with a hook just before it, so that the interleavings
// below (another member announcing mid-follow, an op finishing mid-pass)
// happen every time. The real manager and cores run in cmd/graft's
// cluster tests.
type fakeUp struct {
	cur, prev  upgrade.Version
	hasPrev    bool
	r          *Rollout
	beforeMove func()
	rollbacks  int
}

func (f *fakeUp) Behaviours() []string                    { return []string{"b"} }
func (f *fakeUp) Current(string) (upgrade.Version, bool)  { return f.cur, true }
func (f *fakeUp) Previous(string) (upgrade.Version, bool) { return f.prev, f.hasPrev }
func (f *fakeUp) Running(string) (upgrade.Op, bool)       { return upgrade.Op{}, false }
func (f *fakeUp) UpgradeWith(ctx context.Context, b, src string, o upgrade.UpgradeOptions) (mailbox.UpgradeRecord, error) {
	data, _ := os.ReadFile(src)
	s := sha256.Sum256(data)
	to := upgrade.Version{SHA: hex.EncodeToString(s[:]), Path: src}
	if f.beforeMove != nil {
		f.beforeMove()
	}
	_ = f.r.Announce(ctx, b, upgrade.Op{Kind: upgrade.KindUpgrade, From: f.cur, To: to})
	f.prev, f.hasPrev, f.cur = f.cur, true, to
	return mailbox.UpgradeRecord{}, nil
}
func (f *fakeUp) LastClusterOp(string) string { return "" }
func (f *fakeUp) RollbackWith(ctx context.Context, b string, _ upgrade.RollbackOptions) (mailbox.UpgradeRecord, error) {
	f.rollbacks++
	_ = f.r.Announce(ctx, b, upgrade.Op{Kind: upgrade.KindRollback, From: f.cur, To: f.prev})
	f.cur, f.hasPrev = f.prev, false
	return mailbox.UpgradeRecord{}, nil
}

func ver(t *testing.T, dir, content string) upgrade.Version {
	p := filepath.Join(dir, content)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o700))
	s := sha256.Sum256([]byte(content))
	return upgrade.Version{SHA: hex.EncodeToString(s[:]), Path: p}
}

func ann(t *testing.T, ctx context.Context, c *clientv3.Client, key string) announcement {
	resp, err := c.Get(ctx, key)
	require.NoError(t, err)
	var a announcement
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &a))
	return a
}

// A member that was down while the cluster rolled back, restarting on
// the version rolled back from, follows the rollback rather than announce
// its version again; a follow whose op starts after another member
// announced a newer version does not turn the cluster back.
func TestStaleVersionsAreNotAnnounced(t *testing.T) {
	client, ctx := startEtcd(t)
	dir := t.TempDir()
	v1, v2, v3 := ver(t, dir, "one"), ver(t, dir, "two"), ver(t, dir, "three")

	// 1: a member down during a cluster rollback (v2 -> v1) restarts on v2.
	f := &fakeUp{cur: v2, prev: v1, hasPrev: true}
	r, err := New(Config{Client: client, Prefix: "/p1", Member: "c", Upgrader: f, Scratch: t.TempDir()})
	require.NoError(t, err)
	f.r = r
	b, _ := json.Marshal(announcement{SHA: v1.SHA, Kind: "rollback", Prev: v2.SHA, By: "a"})
	_, err = client.Put(ctx, r.annKey("b"), string(b))
	require.NoError(t, err)
	require.NoError(t, r.reconcile(ctx, false))
	require.Equal(t, v1.SHA, ann(t, ctx, client, r.annKey("b")).SHA, "the rollback stays announced")
	require.Equal(t, v1.SHA, f.cur.SHA, "the restarted member rolled back too")

	// 2: a follower of v2 whose op starts after another member announced v3.
	g := &fakeUp{cur: v1}
	r2, err := New(Config{Client: client, Prefix: "/p2", Member: "b", Upgrader: g, Scratch: t.TempDir()})
	require.NoError(t, err)
	g.r = r2
	require.NoError(t, r2.publishBinary(ctx, v2.SHA, v2.Path))
	b, _ = json.Marshal(announcement{SHA: v2.SHA, Kind: "upgrade", Prev: v1.SHA, By: "a"})
	_, err = client.Put(ctx, r2.annKey("b"), string(b))
	require.NoError(t, err)
	g.beforeMove = func() {
		b, _ := json.Marshal(announcement{SHA: v3.SHA, Kind: "upgrade", Prev: v2.SHA, By: "c"})
		_, err := client.Put(ctx, r2.annKey("b"), string(b))
		require.NoError(t, err)
		g.beforeMove = nil
	}
	require.NoError(t, r2.reconcile(ctx, false))
	require.Equal(t, v3.SHA, ann(t, ctx, client, r2.annKey("b")).SHA, "v3, announced mid-follow, stays")
}

// A pass that read the announcements before this member's own op
// announced and finished does not take the old announcement for news:
// it neither follows it back nor rolls the cluster back.
func TestOwnAnnouncementAfterThePassReadIsNotUndone(t *testing.T) {
	client, ctx := startEtcd(t)
	dir := t.TempDir()
	v1, v2 := ver(t, dir, "one"), ver(t, dir, "two")
	f := &fakeUp{cur: v1}
	r, err := New(Config{Client: client, Prefix: "/p3", Member: "a", Upgrader: f, Scratch: t.TempDir()})
	require.NoError(t, err)
	f.r = r
	old := announcement{SHA: v1.SHA, Kind: "upgrade"}
	b, _ := json.Marshal(old)
	resp, err := client.Put(ctx, r.annKey("b"), string(b))
	require.NoError(t, err)
	r0 := resp.Header.Revision
	require.NoError(t, r.step(ctx, "b", f.cur, old, true, r0, r0, false)) // in sync
	// this member's own op: announce v2 and move (what the manager does), while reconcile holds the snapshot of r0
	require.NoError(t, r.Announce(ctx, "b", upgrade.Op{Kind: upgrade.KindUpgrade, From: v1, To: v2}))
	f.prev, f.hasPrev, f.cur = v1, true, v2
	require.NoError(t, r.step(ctx, "b", f.cur, old, true, r0, r0, false))
	require.Zero(t, f.rollbacks)
	require.Equal(t, v2.SHA, ann(t, ctx, client, r.annKey("b")).SHA)
	require.Equal(t, v2.SHA, f.cur.SHA)
}
