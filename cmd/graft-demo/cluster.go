package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/mailbox"
)

// member is one core of the cluster demo.
type member struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
	client *control.Client
	dead   atomic.Bool // killed by the demo: its exit is expected
}

// clusterDemo is the demo on a cluster: cores over one etcd store, the
// balls crossing members, the owner of pong killed with kill -9
// mid-stream, then pong rebuilt as v2.
type clusterDemo struct {
	o       options
	members []*member
}

// call asks the first live member that answers: any member reaches any
// actor.
func (d *clusterDemo) call(actor, text string) ([]byte, error) {
	var errs []error
	for _, m := range d.members {
		if m.dead.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := m.client.Call(ctx, actor, control.CallRequest{SendRequest: control.SendRequest{Text: text}})
		cancel()
		if err == nil {
			return r.Reply, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
	}
	return nil, errors.Join(errs...)
}

// live is the first member not killed.
func (d *clusterDemo) live() *member {
	for _, m := range d.members {
		if !m.dead.Load() {
			return m
		}
	}
	return nil
}

// exited reports the first member that exited by itself.
func (d *clusterDemo) exited() <-chan error {
	ch := make(chan error, 1)
	for _, m := range d.members {
		if m.dead.Load() {
			continue
		}
		go func() {
			if err, ok := <-m.exited; ok && !m.dead.Load() {
				ch <- fmt.Errorf("%s: %w", m.name, err)
			}
		}()
	}
	return ch
}

func (d *clusterDemo) start(root string) error {
	bin := filepath.Join(root, "examples", "pingpong", "bin")
	prefix := fmt.Sprintf("/graft/demo-%d", os.Getpid())
	for i := range d.o.cores {
		name := fmt.Sprintf("m%d", i)
		dir := filepath.Join(d.o.work, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		cfg := filepath.Join(dir, "graft.yaml")
		body := fmt.Sprintf(`store:
  path: %s
  backend: etcd
  endpoints: [%s]
  prefix: %s
  max_txn_ops: 4096
control: {dir: %s}
cluster: {member: %s, lease_ttl: %s}
behaviours:
  ping: {binary: %s}
  pong: {binary: %s}
actors:
  - {name: pong, behaviour: pong}
  - {name: ping1, behaviour: ping, requires: [pong]}
  - {name: ping2, behaviour: ping, requires: [pong]}
`, filepath.Join(dir, "data"), d.o.etcd, prefix, filepath.Join(dir, "run"), name, d.o.lease, filepath.Join(bin, "ping"), filepath.Join(bin, "pong"))
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			return fmt.Errorf("write the config of %s: %w", name, err)
		}
		log, err := os.Create(filepath.Join(dir, "core.log"))
		if err != nil {
			return err
		}
		m := &member{name: name, cmd: exec.Command(d.o.graft, "run", "--config", cfg), exited: make(chan error, 1),
			client: control.NewClient(filepath.Join(dir, "run", "graft.sock"))}
		m.cmd.Stdout, m.cmd.Stderr = log, log
		if err := m.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		go func() { m.exited <- m.cmd.Wait(); close(m.exited); log.Close() }()
		d.members = append(d.members, m)
		say("started core %s (pid %d); its log: %s", name, m.cmd.Process.Pid, filepath.Join(dir, "core.log"))
	}
	return nil
}

func (d *clusterDemo) stop() {
	for _, m := range d.members {
		if !m.dead.Load() {
			stopCore(m.cmd, m.exited)
		}
		m.client.Close()
	}
}

// owner is the member that runs actor, as a live member sees it.
func (d *clusterDemo) owner(ctx context.Context, actor string) string {
	m := d.live()
	if m == nil {
		return ""
	}
	st, err := m.client.Status(ctx)
	if err != nil {
		return ""
	}
	for _, a := range st.Actors {
		if a.Name == actor {
			return a.Owner
		}
	}
	return ""
}

// runCluster is run on a cluster of o.cores cores.
func runCluster(ctx context.Context, o options) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	d := &clusterDemo{o: o}
	defer d.stop()
	if err := d.start(root); err != nil {
		return err
	}
	if err := waitFor(ctx, d.exited(), 60*time.Second, "the cluster to answer", func() bool {
		_, err := d.call("pong", "stats")
		return err == nil && d.owner(ctx, "ping1") != "" && d.owner(ctx, "ping2") != ""
	}); err != nil {
		return err
	}
	before, err := pong(d.call)
	if err != nil {
		return err
	}
	say("pong is at version %s on %s; ping1 on %s, ping2 on %s; each ping starts %d balls", before.Version,
		d.owner(ctx, "pong"), d.owner(ctx, "ping1"), d.owner(ctx, "ping2"), o.balls)
	for _, p := range pings {
		if _, err := d.live().client.Send(ctx, p, control.SendRequest{Text: fmt.Sprintf("start %d", o.balls)}); err != nil {
			return fmt.Errorf("start the balls of %s: %w", p, err)
		}
	}
	if err := exchange(ctx, d.exited(), d.call, o.before); err != nil {
		return err
	}
	failover, err := d.killOwner(ctx, "pong")
	if err != nil {
		return err
	}
	if err := exchange(ctx, d.exited(), d.call, o.before); err != nil {
		return err
	}
	rec, err := d.upgrade(ctx, root)
	if err != nil {
		return err
	}
	if err := exchange(ctx, d.exited(), d.call, o.after); err != nil {
		return err
	}
	say("stopping the balls and letting those in flight land")
	for _, p := range pings {
		if _, err := d.live().client.Send(ctx, p, control.SendRequest{Text: "stop"}); err != nil {
			return fmt.Errorf("stop the balls of %s: %w", p, err)
		}
	}
	var total pingStats
	if err := waitFor(ctx, d.exited(), 60*time.Second, "every ball to land", func() bool {
		t, landed, err := pingTotals(d.call)
		total = t
		return err == nil && landed
	}); err != nil {
		return err
	}
	after, err := pong(d.call)
	if err != nil {
		return err
	}
	fmt.Printf("\nfailover          %d ms (kill -9 of pong's owner to pong's first reply on another member)\n", failover.Milliseconds())
	return summary(total, before, after, rec, -1)
}

// killOwner kills actor's owner with SIGKILL and returns how long until
// the actor answered again, on another member.
func (d *clusterDemo) killOwner(ctx context.Context, actor string) (time.Duration, error) {
	owner := d.owner(ctx, actor)
	var victim *member
	for _, m := range d.members {
		if m.name == owner {
			victim = m
		}
	}
	if victim == nil {
		return 0, fmt.Errorf("no member owns %s", actor)
	}
	say("kill -9 of %s, which runs %s, mid-stream", victim.name, actor)
	victim.dead.Store(true)
	if err := victim.cmd.Process.Kill(); err != nil {
		return 0, fmt.Errorf("kill %s: %w", victim.name, err)
	}
	if err := <-victim.exited; err == nil {
		say("%s had exited already", victim.name)
	}
	killed := time.Now()
	if err := waitFor(ctx, d.exited(), 60*time.Second, actor+" on another member", func() bool {
		_, err := d.call(actor, "stats")
		return err == nil
	}); err != nil {
		return 0, err
	}
	took := time.Since(killed)
	say("%s answers again on %s, %d ms after the kill", actor, d.owner(ctx, actor), took.Milliseconds())
	return took, nil
}

// upgrade rebuilds pong as v2 and waits for the record of the member
// that runs it.
func (d *clusterDemo) upgrade(ctx context.Context, root string) (mailbox.UpgradeRecord, error) {
	say("rebuilding pong as v2 (every member watches the binary)")
	build := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-plugins.sh"), "v2")
	if out, err := build.CombinedOutput(); err != nil {
		return mailbox.UpgradeRecord{}, fmt.Errorf("rebuild pong v2: %w\n%s", err, out)
	}
	written := time.Now()
	var rec mailbox.UpgradeRecord
	err := waitFor(ctx, d.exited(), 60*time.Second, "the upgrade of pong", func() bool {
		h, err := d.live().client.History(ctx)
		if err != nil {
			return false
		}
		for _, r := range h {
			sr := control.StoreRecord(r)
			if sr.Behaviour == "pong" && strings.HasPrefix(sr.To, "2.") && movedActor(sr, "pong") {
				rec = sr
				return true
			}
		}
		return false
	})
	if err != nil {
		return rec, err
	}
	report(rec, written)
	return rec, nil
}

func movedActor(r mailbox.UpgradeRecord, actor string) bool {
	for _, st := range r.Steps {
		if st.Actor == actor {
			return true
		}
	}
	return false
}
