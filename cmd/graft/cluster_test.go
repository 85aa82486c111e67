package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
)

// clusterConfig writes the config of cluster member i: its own control
// folder and module cache, the shared etcd store and actors.
func clusterConfig(t testing.TB, endpoint, prefix, kv string, i int) string {
	t.Helper()
	dir := testbin.ShortDir(t)
	path := filepath.Join(dir, "graft.yaml")
	actors := ""
	for k := range 6 {
		actors += fmt.Sprintf("  - {name: k%d, behaviour: kv}\n", k)
	}
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store:
  path: ./data
  backend: etcd
  endpoints: [%s]
  prefix: %s
  max_txn_ops: %d
control: {dir: ./run}
cluster: {member: m%d, lease_ttl: 2s}
behaviours:
  kv: {binary: %s}
actors:
%s`, endpoint, prefix, etcdtest.MaxTxnOps, i, kv, actors)), 0o644))
	return path
}

// owners reads who runs each actor, as member p sees it; "" until every
// actor has an owner that runs it.
func owners(t testing.TB, p *coreProc) map[string]string {
	out := map[string]string{}
	for name, st := range p.status(t) {
		out[name] = st.Owner
	}
	return out
}

// Three cores over one etcd store form a cluster: each actor runs on
// exactly one member, any member reaches any actor, and when the owner of
// an actor is killed with kill -9 its actors move to the two others
// within the lease, with their state, and nothing acknowledged is lost.
func TestClusterSpreadsActorsAndFailsOver(t *testing.T) {
	m := etcdtest.Start(t)
	_, kv := kvSource(t)
	var cores []*coreProc
	for i := range 3 {
		cores = append(cores, startGraftAt(t, clusterConfig(t, m.Endpoint, "/graft/cluster-test", kv, i), nil))
	}
	testbin.WaitFor(t, 60*time.Second, "every actor owned, seen alike by the three members", func() bool {
		first := owners(t, cores[0])
		for _, p := range cores {
			o := owners(t, p)
			for name, member := range first {
				if member == "" || o[name] != member {
					return false
				}
			}
		}
		return len(first) == 6
	})
	spread := owners(t, cores[0])
	t.Logf("owners: %v", spread)
	counts := map[string]int{}
	for _, member := range spread {
		counts[member]++
	}
	assert.GreaterOrEqual(t, len(counts), 2, "the actors are spread over the members")

	// Every member reaches every actor; k0's count is kept across them.
	for i, p := range cores {
		assert.Equal(t, fmt.Sprintf("v1:%d", i+1), p.ok(t, "call", "k0", fmt.Sprintf("via-m%d", i)))
	}
	victim := spread["k0"]
	var vi int
	_, err := fmt.Sscanf(victim, "m%d", &vi)
	require.NoError(t, err)
	survivor := cores[(vi+1)%3]
	for i := range 10 {
		survivor.ok(t, "send", "k0", fmt.Sprintf("queued-%d", i), "--id", fmt.Sprintf("q-%d", i))
	}
	require.NoError(t, cores[vi].cmd.Process.Kill()) // kill -9 of k0's owner
	<-cores[vi].exited
	killed := time.Now()
	testbin.WaitFor(t, 30*time.Second, "k0 running on another member", func() bool {
		st := survivor.status(t)["k0"]
		return st.Owner != "" && st.Owner != victim && (st.Status == "running" || st.Status == "remote")
	})
	reply := survivor.ok(t, "call", "k0", "after-failover")
	t.Logf("k0 answered %q on %s, %s after the kill", reply, survivor.status(t)["k0"].Owner, time.Since(killed).Round(time.Millisecond))
	assert.Equal(t, "v1:14", reply, "three calls and ten sends before the kill, none lost or applied twice")
	out := survivor.ok(t, "status")
	assert.Contains(t, out, "OWNER")
	assert.Contains(t, out, "MEMBER")
	assert.False(t, strings.Contains(out, victim+" "), "the killed member has left the members: %s", out)
}

// ownedBy lists the actors member sees as owned by owner.
func ownedBy(t testing.TB, p *coreProc, owner string) []string {
	var out []string
	for name, o := range owners(t, p) {
		if o == owner {
			out = append(out, name)
		}
	}
	return out
}

// A member stopped (SIGSTOP) past its lease loses its actors to the
// other, which serves them; woken up (SIGCONT), it finds its lease gone,
// steps down with a log line that says so, commits nothing for the actors
// it had, and joins again. Then a third member joins and takes its share
// over, between two commits, while messages keep coming: every message is
// applied exactly once.
func TestClusterStoppedMemberStepsDownAndJoinerTakesItsShare(t *testing.T) {
	m := etcdtest.Start(t)
	_, kv := kvSource(t)
	const prefix = "/graft/cluster-stop"
	a, b := startPair(t, m.Endpoint, prefix, kv)
	sent := map[string]int{}
	call := func(p *coreProc, actor string) {
		sent[actor]++
		assert.Equal(t, fmt.Sprintf("v1:%d", sent[actor]), p.ok(t, "call", actor, "x", "--timeout", "30s"), "actor %s", actor)
	}
	lost := ownedBy(t, b, "m0")
	for _, actor := range lost {
		call(a, actor)
	}

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGSTOP))
	testbin.WaitFor(t, 30*time.Second, "m1 owns every actor", func() bool { return len(ownedBy(t, b, "m1")) == 6 })
	for _, actor := range lost {
		call(b, actor) // served by m1 now
	}
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGCONT))
	testbin.WaitFor(t, 30*time.Second, "m0 says it stepped down", func() bool {
		return strings.Contains(a.logs.String(), "lost this member's lease; stepping down")
	})
	testbin.WaitFor(t, 30*time.Second, "m0 back with a share", func() bool { return len(ownedBy(t, b, "m0")) > 0 })

	c := startGraftAt(t, clusterConfig(t, m.Endpoint, prefix, kv, 2), nil)
	for round := 0; len(ownedBy(t, b, "m2")) == 0 || round < 3; round++ {
		for k := range 6 {
			call([]*coreProc{a, b, c}[k%3], fmt.Sprintf("k%d", k))
		}
		require.Less(t, round, 200, "m2 never took a share")
	}
	for k := range 6 {
		call(c, fmt.Sprintf("k%d", k))
	}
}

// An upgrade started on one member reaches the whole cluster (package
// rollout): the other member follows it with the bytes it fetched from
// etcd, so every actor runs v2 wherever it lives; the owner's kill -9
// moves its actors to a member that already runs v2; and a member that
// joins later, configured with the old binary, takes v2 from etcd before
// it runs its share.
func TestClusterUpgradeReachesEveryMember(t *testing.T) {
	m := etcdtest.Start(t)
	_, kv := kvSource(t)
	const prefix = "/graft/cluster-rollout"
	a, b := startPair(t, m.Endpoint, prefix, kv)
	for k := range 6 {
		assert.Equal(t, "v1:1", b.ok(t, "call", fmt.Sprintf("k%d", k), "before"))
	}
	a.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	onV2 := func(p *coreProc, actors ...string) bool {
		for _, name := range actors {
			if !strings.HasPrefix(p.status(t)[name].Module, "2.") {
				return false
			}
		}
		return true
	}
	all := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	testbin.WaitFor(t, 60*time.Second, "every actor on v2, on both members", func() bool { return onV2(b, all...) })
	for k := range 6 {
		assert.Equal(t, "v2:2", a.ok(t, "call", fmt.Sprintf("k%d", k), "after"), "k%d: state migrated, each call applied once", k)
	}
	assert.Contains(t, b.logs.String(), "cluster rollout: following", "m1 followed m0's upgrade")
	// Each member recorded its share; the history shows the op once.
	testbin.WaitFor(t, 30*time.Second, "one history record of the upgrade, with both members' shares", func() bool {
		ups := upgradesIn(t, b)
		return len(ups) == 1 && len(ups[0].Members) == 2
	})
	up := upgradesIn(t, a)[0]
	assert.Equal(t, 6, up.Actors, "every actor of the cluster, in one record")
	assert.Equal(t, "completed", up.Outcome)
	assert.ElementsMatch(t, []string{"m0", "m1"}, []string{up.Members[0].Member, up.Members[1].Member})
	assert.Regexp(t, `(?m)^\d+\s+upgrade\s+kv\s.*\s(m0,m1|m1,m0)\s+6\s+completed$`, b.ok(t, "history"), "one row, with its members")

	// A rollback on the other member goes back on both, then forward again.
	b.ok(t, "rollback", "kv")
	onV1 := func(p *coreProc) bool {
		for _, name := range all {
			if !strings.HasPrefix(p.status(t)[name].Module, "1.") {
				return false
			}
		}
		return true
	}
	testbin.WaitFor(t, 60*time.Second, "every actor back on v1, on both members", func() bool { return onV1(a) })
	for k := range 6 {
		assert.Equal(t, "v1:3", a.ok(t, "call", fmt.Sprintf("k%d", k), "rolled-back"), "k%d: state migrated down", k)
	}
	a.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	testbin.WaitFor(t, 60*time.Second, "every actor on v2 again", func() bool { return onV2(b, all...) })

	require.NoError(t, a.cmd.Process.Kill()) // kill -9
	<-a.exited
	testbin.WaitFor(t, 30*time.Second, "m0's actors on m1", func() bool { return len(ownedBy(t, b, "m1")) == 6 })
	for k := range 6 {
		assert.Equal(t, "v2:4", b.ok(t, "call", fmt.Sprintf("k%d", k), "moved"), "k%d runs v2 on m1 with its state", k)
	}

	c := startGraftAt(t, clusterConfig(t, m.Endpoint, prefix, kv, 2), nil) // configured with v1
	testbin.WaitFor(t, 60*time.Second, "m2 owns a share, on v2", func() bool {
		mine := ownedBy(t, b, "m2")
		return len(mine) > 0 && len(mine) < 6 && onV2(c, mine...)
	})
	for _, name := range ownedBy(t, b, "m2") {
		assert.Equal(t, "v2:5", c.ok(t, "call", name, "joined"), "%s runs v2 on the joiner with its state", name)
	}
	assert.Contains(t, c.logs.String(), "cluster rollout: following", "the joiner took v2 from etcd")
	testbin.WaitFor(t, 30*time.Second, "the joiner's share is in the second upgrade's record", func() bool {
		ups := upgradesIn(t, c)
		return len(ups) == 2 && slices.ContainsFunc(ups[1].Members, func(s control.MemberShare) bool { return s.Member == "m2" })
	})
}

// A rollback in flight catches actors on a member that has not rolled
// back yet: m1 is stopped (SIGSTOP) on v2 while m0 rolls back to v1, so
// m1's actors reach m0, once its lease is gone, with v2 states that v1
// cannot read. m0 moves each down with v2's own down-migration (the
// version it rolled back from, kept in its cache) and runs it on v1, with
// its count; m1, woken, steps down and follows the rollback before it
// joins again (rollout.CatchUp), so its new share runs v1 from its first
// message.
func TestClusterRollbackInFlightMovesStragglersDown(t *testing.T) {
	a, b, _, _ := upgradedPair(t, "/graft/cluster-rollback-in-flight")
	all := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	stragglers := ownedBy(t, a, "m1")
	require.NotEmpty(t, stragglers)

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGSTOP))
	a.ok(t, "rollback", "kv")
	testbin.WaitFor(t, 30*time.Second, "m0 owns every actor", func() bool { return len(ownedBy(t, a, "m0")) == 6 })
	for _, name := range all {
		assert.Equal(t, "v1:3", a.ok(t, "call", name, "down", "--timeout", "30s"), "%s runs v1 on m0 with its state", name)
	}
	assert.Equal(t, len(stragglers), strings.Count(a.logs.String(), "migrated it down with that version"), "each straggler, and only they, moved down at its start")

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGCONT))
	testbin.WaitFor(t, 60*time.Second, "m1 back with a share, on v1", func() bool {
		mine := ownedBy(t, a, "m1")
		st := b.status(t)
		return len(mine) > 0 && !slices.ContainsFunc(mine, func(name string) bool { return !strings.HasPrefix(st[name].Module, "1.") })
	})
	for _, name := range all {
		assert.Equal(t, "v1:4", b.ok(t, "call", name, "after", "--timeout", "30s"), "%s on v1 wherever it runs", name)
	}
}

// A member that never ran the version rolled back from still runs an
// actor that version's state holds: m1 (on v2) and then m0 (rolled back
// to v1) are stopped, and m2, started on v1 after the rollback, gets all
// their actors once their leases expire. It fetches v2 from etcd (the
// rollback's announcement names it as the version before) and moves m1's
// actors down with it.
func TestClusterStragglerReachesAMemberThatNeverRanTheVersion(t *testing.T) {
	const prefix = "/graft/cluster-straggler-fetched"
	a, b, m, kv := upgradedPair(t, prefix)
	all := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	stragglers := ownedBy(t, a, "m1")
	require.NotEmpty(t, stragglers)
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGSTOP))
	a.ok(t, "rollback", "kv")
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGSTOP))
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGCONT)
		_ = b.cmd.Process.Signal(syscall.SIGCONT)
	})

	c := startGraftAt(t, clusterConfig(t, m.Endpoint, prefix, kv, 2), nil) // v1, and never ran v2
	testbin.WaitFor(t, 60*time.Second, "m2 owns every actor", func() bool { return len(ownedBy(t, c, "m2")) == 6 })
	for _, name := range all {
		assert.Equal(t, "v1:3", c.ok(t, "call", name, "down", "--timeout", "30s"), "%s runs v1 on m2 with its state", name)
	}
	assert.Equal(t, len(stragglers), strings.Count(c.logs.String(), "migrated it down with that version"), "m1's actors moved down, with v2 fetched from etcd")
	assert.NotContains(t, c.logs.String(), "cluster rollout: following", "m2 ran v1 all along")
}

// upgradedPair starts two members over a new etcd, calls each of the six
// actors once on v1, upgrades them to v2 through m0, waits for every one
// on v2 and calls each again ("v2:2").
func upgradedPair(t *testing.T, prefix string) (a, b *coreProc, m *etcdtest.Member, kv string) {
	t.Helper()
	m = etcdtest.Start(t)
	_, kv = kvSource(t)
	a, b = startPair(t, m.Endpoint, prefix, kv)
	all := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	for _, name := range all {
		assert.Equal(t, "v1:1", b.ok(t, "call", name, "before"))
	}
	a.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	testbin.WaitFor(t, 60*time.Second, "every actor on v2, on both members", func() bool {
		st := b.status(t)
		return !slices.ContainsFunc(all, func(name string) bool { return !strings.HasPrefix(st[name].Module, "2.") })
	})
	for _, name := range all {
		assert.Equal(t, "v2:2", a.ok(t, "call", name, "up"))
	}
	return a, b, m, kv
}

// upgradesIn is the upgrade records of p's history (`graft history
// --json`), one per cluster op.
func upgradesIn(t *testing.T, p *coreProc) []control.UpgradeRecord {
	t.Helper()
	var recs []control.UpgradeRecord
	require.NoError(t, json.Unmarshal([]byte(p.ok(t, "history", "--json")), &recs))
	var ups []control.UpgradeRecord
	for _, r := range recs {
		if r.Kind == "upgrade" {
			ups = append(ups, r)
		}
	}
	return ups
}

// A member killed in the middle of its share of a cluster upgrade (the
// failpoint build kills m0 right after its first group's commit, before
// its op could record anything) does not leave the upgrade half done:
// the op was announced before its first actor moved, so m1 moved its own
// actors meanwhile and holds v2 when m0's actors, some on v2 already,
// reach it; every actor ends on v2 with its state.
func TestClusterMemberKilledMidUpgradeIsFinishedByTheOthers(t *testing.T) {
	m := etcdtest.Start(t)
	_, kv := kvSource(t)
	const prefix = "/graft/cluster-killed-mid-upgrade"
	a := startGraftBin(t, plugin("graft-failpoints"), []string{"GRAFT_FAILPOINT=committed"}, clusterConfig(t, m.Endpoint, prefix, kv, 0), nil)
	b := startGraftAt(t, clusterConfig(t, m.Endpoint, prefix, kv, 1), nil)
	testbin.WaitFor(t, 60*time.Second, "both members own actors", func() bool {
		m0, m1 := len(ownedBy(t, b, "m0")), len(ownedBy(t, b, "m1"))
		return m0 > 0 && m1 > 0 && m0+m1 == 6
	})
	for k := range 6 {
		assert.Equal(t, "v1:1", b.ok(t, "call", fmt.Sprintf("k%d", k), "before"))
	}
	r := graft(t, "", nil, "upgrade", "kv", "--binary", plugin("kv2"), "--config", a.config)
	assert.NotEqual(t, 0, r.code, "m0 died in the middle of its upgrade")
	<-a.exited
	assert.Contains(t, a.logs.String(), "failpoint: killing the core")

	all := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	testbin.WaitFor(t, 60*time.Second, "every actor on m1, on v2", func() bool {
		st := b.status(t)
		for _, name := range all {
			if st[name].Owner != "m1" || !strings.HasPrefix(st[name].Module, "2.") || st[name].Status != "running" {
				return false
			}
		}
		return true
	})
	for k := range 6 {
		assert.Equal(t, "v2:2", b.ok(t, "call", fmt.Sprintf("k%d", k), "after"), "k%d: on v2 with its state", k)
	}
}

// startPair starts members m0 and m1 of a cluster and waits until each
// owns a share of the six actors.
func startPair(t *testing.T, endpoint, prefix, kv string) (a, b *coreProc) {
	t.Helper()
	a = startGraftAt(t, clusterConfig(t, endpoint, prefix, kv, 0), nil)
	b = startGraftAt(t, clusterConfig(t, endpoint, prefix, kv, 1), nil)
	testbin.WaitFor(t, 60*time.Second, "both members own actors", func() bool {
		m0, m1 := len(ownedBy(t, b, "m0")), len(ownedBy(t, b, "m1"))
		return m0 > 0 && m1 > 0 && m0+m1 == 6
	})
	return a, b
}
