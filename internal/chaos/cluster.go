package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// The cluster run (RunCluster, `graft-chaos --cluster`): three graft cores
// as members of one cluster over a three-member etcd cluster, the kv
// actors and the register under the same load as the single-core run,
// sent through any live member. The faults: kill -9 of a core (started
// again a moment later), SIGSTOP of a core past its lease (then SIGCONT:
// it must step down), kill -9 of one etcd member at a time (started again
// on its data), and an upgrade of ckv: by a rebuilt binary that every
// member watches, or by `graft upgrade` on one member, which package
// rollout carries to the others, and later a rollback of it by `graft
// rollback` on one member, which the others follow while actors move
// between members (one that reaches a member that rolled back with the
// newer state is moved down there: core.StateWriters).
// The checks are the single-core run's on the store in etcd: every
// acknowledged send applied once and in order, the register's calls
// linearizable, every actor on a version that reads its state, nothing
// queued, no process left behind.

// clusterLease is the members' lease_ttl: short, so that a SIGSTOP past it
// fits a short run.
const clusterLease = 2 * time.Second

// member is one process of the cluster run: a core or an etcd member.
type member struct {
	name string
	args []string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (m *member) start(bin string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	m.cmd, m.done = cmd, done
	return nil
}

// alive reports whether the process runs (SIGSTOPped counts as alive).
func (m *member) alive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *member) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-done
	}
}

// stopGracefully sends SIGTERM and waits, SIGKILL after d.
func (m *member) stopGracefully(d time.Duration) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
	}
}

// clusterRun is a Runner whose core is a cluster.
type clusterRun struct {
	*Runner
	etcdBin   string
	endpoints []string
	etcd      []*member
	cores     []*member
	clients   []*control.Client
	next      atomic.Int64
	etcdDown  atomic.Bool
}

// RunCluster is Run on a cluster (see the comment at the top of
// cluster.go).
func RunCluster(ctx context.Context, opts Options) (Result, error) {
	opts = opts.withDefaults()
	dir, err := os.MkdirTemp("", "chaos-cluster")
	if err != nil {
		return Result{}, fmt.Errorf("make the run's folder: %w", err)
	}
	dir, _ = filepath.EvalSymlinks(dir)
	r := &Runner{opts: opts, dir: dir, gate: newGate(), hist: NewHistory(), stopped: map[int]procInfo{}, seenSockets: map[string]bool{}}
	c := &clusterRun{Runner: r}
	res, err := c.run(ctx)
	res.Dir = dir
	if err != nil || !res.Report.OK() || opts.Keep {
		return res, err
	}
	res.Dir = ""
	return res, os.RemoveAll(dir)
}

func (c *clusterRun) run(ctx context.Context) (Result, error) {
	if err := c.setupCluster(); err != nil {
		return Result{}, err
	}
	defer c.stopAll()
	if err := c.startAll(ctx); err != nil {
		return Result{}, err
	}
	c.gate.open() // some member always answers: never all are down
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	stop := make(chan struct{})
	var load, async sync.WaitGroup
	c.startLoad(loadCtx, stop, &load)
	injectErr := c.injectCluster(ctx, &async)
	async.Wait()
	c.reviveAll(ctx)
	close(stop)
	load.Wait()
	if injectErr != nil {
		return Result{}, injectErr
	}
	f, err := c.finishCluster(ctx)
	if err != nil {
		return Result{}, err
	}
	rep := Check(c.hist, f)
	if !rep.OK() {
		rep.Problems = append(rep.Problems, c.notes...)
	}
	st := &c.stats
	if c.opts.Progress != nil {
		fmt.Fprintf(c.opts.Progress, "chaos: cluster faults: core kills %d, core stops %d, etcd member kills %d, upgrades %d, rollbacks %d\n",
			st.coreKills.Load(), st.moduleStops.Load(), st.moduleKills.Load(), st.upgrades.Load(), st.rollbacks.Load())
	}
	return Result{Report: rep, Summary: "cluster: " + rep.Summary(c.opts.Seed, c.opts.Events)}, nil
}

// freePort is a loopback address free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// setupCluster builds the binaries and writes the members' configs.
func (c *clusterRun) setupCluster() error {
	bin, vers, plugins := filepath.Join(c.dir, "bin"), filepath.Join(c.dir, "versions"), filepath.Join(c.dir, "plugins")
	for _, d := range []string{bin, vers, plugins} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := testbin.Build(bin, "github.com/graft-host/graft/cmd/graft", "github.com/graft-host/graft/internal/etcdtest/member"); err != nil {
		return err
	}
	const testdata = "github.com/graft-host/graft/internal/chaos/testdata/"
	if err := testbin.Build(vers, testdata+"ckv1", testdata+"ckv2", testdata+"register"); err != nil {
		return err
	}
	c.graftBin, c.etcdBin = filepath.Join(bin, "graft"), filepath.Join(bin, "member")
	c.versions = map[string]string{"1": filepath.Join(vers, "ckv1"), "2": filepath.Join(vers, "ckv2")}
	c.kvSource = filepath.Join(plugins, "ckv")
	if err := copyFile(c.versions["1"], c.kvSource); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(vers, "register"), filepath.Join(plugins, "register")); err != nil {
		return err
	}
	for i := 0; i < c.opts.KVActors; i++ {
		c.kvActors = append(c.kvActors, fmt.Sprintf("kv%d", i))
	}
	c.actors = append(append([]string(nil), c.kvActors...), registerActor)
	var initial []string
	for i := range 3 {
		client, err1 := freePort()
		peer, err2 := freePort()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("find free ports: %w", errors.Join(err1, err2))
		}
		c.endpoints = append(c.endpoints, "http://"+client)
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i, peer))
		c.etcd = append(c.etcd, &member{name: fmt.Sprintf("e%d", i), log: filepath.Join(c.dir, fmt.Sprintf("etcd%d.log", i)),
			args: []string{"-name", fmt.Sprintf("e%d", i), "-dir", filepath.Join(c.dir, fmt.Sprintf("etcd%d", i)), "-client", "http://" + client, "-peer", "http://" + peer}})
	}
	for _, m := range c.etcd {
		m.args = append(m.args, "-cluster", strings.Join(initial, ","))
	}
	for i := range 3 {
		mdir := filepath.Join(c.dir, fmt.Sprintf("m%d", i))
		if err := os.MkdirAll(mdir, 0o700); err != nil {
			return err
		}
		cfg := filepath.Join(mdir, "graft.yaml")
		if err := os.WriteFile(cfg, []byte(c.memberConfig(i)), 0o600); err != nil {
			return err
		}
		c.cores = append(c.cores, &member{name: fmt.Sprintf("m%d", i), log: filepath.Join(mdir, "core.log"),
			args: []string{"run", "--config", cfg, "--log-level", "warn", "--grace", "20s"}})
		c.clients = append(c.clients, control.NewClient(filepath.Join(mdir, "run", "graft.sock")))
	}
	c.pick = c.pickMember
	return nil
}

// memberConfig is core i's config: the single-core run's behaviours, the
// shared etcd store, its own folders and member name.
func (c *clusterRun) memberConfig(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `store:
  path: ./data
  backend: etcd
  endpoints: [%s]
  prefix: /graft/chaos
  max_txn_ops: 4096
control: {dir: ./run}
cluster: {member: m%d, lease_ttl: %s}
limits: {max_attempts: %d, batch_size: 64}
upgrade: {max_pause: 1s}
supervision: {strategy: one_for_one, max_restarts: 100000, period: 1s, backoff_min: 10ms, backoff_max: 200ms}
behaviours:
  ckv: {binary: %s, start_timeout: 20s, call_timeout: 3s, drain_timeout: 2s}
  register: {binary: %s, start_timeout: 20s, call_timeout: 3s, drain_timeout: 2s}
actors:
`, strings.Join(c.endpoints, ", "), i, clusterLease, maxAttempts, c.kvSource, filepath.Join(filepath.Dir(c.kvSource), "register"))
	for _, a := range c.kvActors {
		fmt.Fprintf(&b, "  - {name: %s, behaviour: ckv, process: own}\n", a)
	}
	fmt.Fprintf(&b, "  - {name: %s, behaviour: register, process: own}\n", registerActor)
	return b.String()
}

// pickMember is a live member's client, round robin.
func (c *clusterRun) pickMember() *control.Client {
	for range len(c.cores) {
		i := int(c.next.Add(1)) % len(c.cores)
		if c.cores[i].alive() {
			return c.clients[i]
		}
	}
	return c.clients[0]
}

// startAll starts the etcd members, then the cores, and waits until every
// actor has an owner that runs it.
func (c *clusterRun) startAll(ctx context.Context) error {
	for _, m := range c.etcd {
		if err := m.start(c.etcdBin); err != nil {
			return err
		}
	}
	for _, m := range c.cores {
		if err := m.start(c.graftBin); err != nil {
			return err
		}
	}
	return c.waitOwned(ctx, 2*time.Minute)
}

// waitOwned waits until a live member sees every actor owned.
func (c *clusterRun) waitOwned(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.pickMember().Status(sctx)
		cancel()
		if err == nil {
			owned := 0
			for _, a := range st.Actors {
				if a.Owner != "" {
					owned++
				}
			}
			if owned >= len(c.actors) {
				return nil
			}
		}
		if err := waitTick(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the cluster did not own every actor within %s; see %s/m*/core.log", within, c.dir)
}
