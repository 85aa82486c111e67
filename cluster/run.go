package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ActorLister lists every actor of the store (the registry), which the
// cluster spreads over its members.
type ActorLister func(ctx context.Context) ([]string, error)

// Join registers this member under a new lease; Run calls it when it was
// not called before. Until then the member owns nothing, and the others
// do not count it: a core joins once it is ready to take actors over, so
// that a handover waits for no start of it. A member key of the same
// name still held by an earlier incarnation (killed, its lease not yet
// expired) is waited for, at most one lease TTL and a bit.
func (c *Cluster) Join(ctx context.Context) error {
	ttl := int64(c.cfg.LeaseTTL.Round(time.Second) / time.Second)
	lease, err := c.client.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("cluster: grant a lease: %w", err)
	}
	info := c.cfg.Info
	info.Since = time.Now().UTC()
	v, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("cluster: encode the member record: %w", err)
	}
	mk := c.keys.member(c.cfg.Member)
	deadline := time.Now().Add(c.cfg.LeaseTTL + 2*time.Second)
	for {
		resp, err := c.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(mk), "=", 0)).
			Then(clientv3.OpPut(mk, string(v), clientv3.WithLease(lease.ID))).Else(clientv3.OpGet(mk)).Commit()
		if err != nil {
			return fmt.Errorf("cluster: register member %q: %w", c.cfg.Member, err)
		}
		if resp.Succeeded {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: member name %q is held by another live core (%s): give each core its own cluster.member", c.cfg.Member, resp.Responses[0].GetResponseRange().Kvs[0].Value)
		}
		c.log.Warn("cluster: the member name is still held, by this member's last run or another core; waiting for its lease to expire", "member", c.cfg.Member)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.mu.Lock()
	c.lease = lease.ID
	c.mu.Unlock()
	c.log.Info("cluster: joined", "lease_ttl", c.cfg.LeaseTTL)
	return nil
}

// load reads the members and owners, swaps them in at once (so that Owns
// never answers from half a view), and returns the revision to watch
// from.
func (c *Cluster) load(ctx context.Context) (int64, error) {
	resp, err := c.client.Get(ctx, c.keys.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("cluster: read the members and owners: %w", err)
	}
	fresh := &Cluster{cfg: c.cfg, keys: c.keys, members: map[string]MemberInfo{}, owners: map[string]string{}, giving: map[string]bool{}, ownRev: map[string]int64{}, leases: map[string]clientv3.LeaseID{}}
	for _, kv := range resp.Kvs {
		fresh.apply(&clientv3.Event{Kv: kv})
	}
	c.mu.Lock()
	for name := range c.giving { // a handover in progress goes on
		if fresh.owners[name] == c.cfg.Member {
			fresh.giving[name] = true
		}
	}
	c.members, c.owners, c.giving, c.ownRev, c.leases = fresh.members, fresh.owners, fresh.giving, fresh.ownRev, fresh.leases
	c.mu.Unlock()
	return resp.Header.Revision, nil
}

func (c *Cluster) apply(ev *clientv3.Event) {
	k := string(ev.Kv.Key)
	switch {
	case len(k) > len(c.keys.members()) && k[:len(c.keys.members())] == c.keys.members():
		c.applyMember(ev)
	case len(k) > len(c.keys.owners()) && k[:len(c.keys.owners())] == c.keys.owners():
		c.applyOwner(ev)
	}
}

// Run keeps this member in the cluster until ctx ends: it renews the
// lease, follows the members and owners, acquires the actors the
// rendezvous hash gives it, hands over (between two commits) those it
// gives another member, and, when it loses its lease (etcd unreachable,
// or this process stopped past the TTL), steps down (releases every
// actor) and joins again. When ctx ends it revokes its lease, so that the
// other members take its actors over at once: call it after the core has
// stopped its actors.
func (c *Cluster) Run(ctx context.Context, core Core, actors ActorLister) error {
	c.mu.RLock()
	joined := c.lease != 0
	c.mu.RUnlock()
	if !joined {
		c.rejoin(ctx)
	}
	for ctx.Err() == nil {
		if err := c.serve(ctx, core, actors); err != nil && ctx.Err() == nil {
			c.stepDown(core, err)
			c.rejoin(ctx)
		}
	}
	c.leave()
	return nil
}

// serve runs one membership (one lease) until it is lost or ctx ends.
func (c *Cluster) serve(ctx context.Context, core Core, actors ActorLister) error {
	c.mu.RLock()
	lease := c.lease
	c.mu.RUnlock()
	if lease == 0 {
		return errors.New("no lease")
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	alive, err := c.client.KeepAlive(kctx, lease)
	if err != nil {
		return fmt.Errorf("renew the lease: %w", err)
	}
	rev, err := c.loadRetrying(ctx, alive)
	if err != nil {
		return err
	}
	watch := c.client.Watch(clientv3.WithRequireLeader(kctx), c.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	var created clientv3.WatchChan // nil: never ready
	if c.cfg.ActorKeys != "" {
		created = c.client.Watch(kctx, c.cfg.ActorKeys, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	}
	tick := time.NewTicker(c.cfg.LeaseTTL / 2)
	defer tick.Stop()
	c.reconcile(ctx, core, actors)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-alive:
			if !ok {
				return errors.New("the lease could not be renewed: etcd was unreachable, or this process was stopped, for longer than lease_ttl")
			}
			continue
		case resp, ok := <-watch:
			if !ok || resp.Err() != nil {
				if rev, err = c.loadRetrying(ctx, alive); err != nil {
					return err
				}
				watch = c.client.Watch(clientv3.WithRequireLeader(kctx), c.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
				continue
			}
			for _, ev := range resp.Events {
				c.apply(ev)
			}
		case _, ok := <-created: // an actor made anywhere: place it now
			if !ok {
				created = nil
			}
		case <-tick.C:
		case <-c.kick:
		}
		c.reconcile(ctx, core, actors)
	}
}

// loadRetrying is load, tried again with backoff while the lease is
// renewed: a read that fails in an etcd election is no reason to give
// every actor up.
func (c *Cluster) loadRetrying(ctx context.Context, alive <-chan *clientv3.LeaseKeepAliveResponse) (int64, error) {
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, c.cfg.LeaseTTL/4) {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.LeaseTTL)
		rev, err := c.load(lctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return rev, err
		}
		c.log.Warn("cluster: cannot read the members and owners yet; trying again", "err", err)
		select {
		case _, ok := <-alive:
			if !ok {
				return 0, errors.New("the lease could not be renewed while the members and owners were read")
			}
		case <-time.After(delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// stepDown gives every actor up after the lease was lost: another member
// may own them already, and its epoch fences this one's commits anyway.
func (c *Cluster) stepDown(core Core, why error) {
	c.mu.Lock()
	old := c.lease
	c.lease = 0
	c.owners, c.giving, c.ownRev = map[string]string{}, map[string]bool{}, map[string]int64{} // a new lease starts from what etcd says
	c.mu.Unlock()
	if old != 0 { // best effort: its owner keys then free the actors at once, not at its expiry
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = c.client.Revoke(rctx, old)
		cancel()
	}
	c.log.Error("cluster: lost this member's lease; stepping down: every actor is released to the other members, and this member joins again",
		"why", why.Error())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := core.Rebalance(ctx); err != nil {
		c.log.Warn("cluster: releasing the actors after the lease was lost", "err", err)
	}
}

// rejoin joins again, with backoff, until it succeeds or ctx ends.
func (c *Cluster) rejoin(ctx context.Context) {
	for delay := 200 * time.Millisecond; ctx.Err() == nil; delay = min(2*delay, 10*time.Second) {
		if c.cfg.BeforeJoin != nil {
			c.cfg.BeforeJoin(ctx) // each try: one that failed with etcd away must not let a later join skip it
		}
		jctx, cancel := context.WithTimeout(ctx, c.cfg.LeaseTTL+5*time.Second)
		err := c.Join(jctx)
		cancel()
		if err == nil {
			return
		}
		c.log.Warn("cluster: cannot join yet; trying again", "in", delay, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// leave revokes the lease: the member key and every owner key go with it.
func (c *Cluster) leave() {
	c.mu.Lock()
	lease := c.lease
	c.lease = 0
	c.mu.Unlock()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.client.Revoke(ctx, lease); err != nil {
		c.log.Warn("cluster: could not revoke the lease; the other members take the actors over when it expires", "err", err)
		return
	}
	c.log.Info("cluster: left; the other members take the actors over")
}

// acquireBatch bounds the owner keys one transaction creates.
const acquireBatch = 64

// reconcile moves this member's ownership toward the rendezvous hash's:
// it acquires the free actors it should own, marks for handover those
// another member should own, lets the core start and stop accordingly,
// and gives up the owner keys of the actors the core has released.
func (c *Cluster) reconcile(ctx context.Context, core Core, actors ActorLister) {
	names, err := actors(ctx)
	if err != nil {
		c.log.Warn("cluster: cannot list the actors", "err", err)
		return
	}
	c.mu.Lock()
	lease := c.lease
	members := make([]string, 0, len(c.members))
	for m := range c.members {
		members = append(members, m)
	}
	if lease != 0 && !slices.Contains(members, c.cfg.Member) {
		members = append(members, c.cfg.Member)
	}
	var acquire []string
	for _, name := range names {
		d, o := desired(members, name), c.owners[name]
		switch {
		case d == c.cfg.Member && o == "":
			acquire = append(acquire, name)
		case o == c.cfg.Member && d != c.cfg.Member:
			c.giving[name] = true
		}
	}
	c.mu.Unlock()
	if lease == 0 {
		return
	}
	for len(acquire) > 0 {
		n := min(len(acquire), acquireBatch)
		c.acquire(ctx, lease, acquire[:n])
		acquire = acquire[n:]
	}
	if _, err := core.Rebalance(ctx); err != nil {
		c.log.Warn("cluster: the core could not hand over every actor yet", "err", err)
	}
	c.giveUp(ctx, core)
	c.dropGone(ctx, names)
}

// acquire creates the owner keys of free actors under the lease: all in
// one transaction, or, when one of them was taken meanwhile, one by one.
func (c *Cluster) acquire(ctx context.Context, lease clientv3.LeaseID, names []string) {
	put := func(names []string) bool {
		cmps := make([]clientv3.Cmp, len(names))
		ops := make([]clientv3.Op, len(names))
		for i, n := range names {
			cmps[i] = clientv3.Compare(clientv3.CreateRevision(c.keys.owner(n)), "=", 0)
			ops[i] = clientv3.OpPut(c.keys.owner(n), c.cfg.Member, clientv3.WithLease(lease))
		}
		resp, err := c.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			c.log.Warn("cluster: acquire actors", "err", err)
			return false
		}
		if resp.Succeeded {
			c.mu.Lock()
			for _, n := range names {
				if resp.Header.Revision >= c.ownRev[n] {
					c.owners[n], c.ownRev[n] = c.cfg.Member, resp.Header.Revision
				}
			}
			c.mu.Unlock()
		}
		return resp.Succeeded
	}
	if put(names) || len(names) == 1 {
		return
	}
	for _, n := range names {
		put([]string{n})
	}
}

// giveUp deletes the owner keys of the actors being handed over that the
// core no longer runs, so that their new owner acquires them.
func (c *Cluster) giveUp(ctx context.Context, core Core) {
	c.mu.RLock()
	var done []string
	for name := range c.giving {
		if core.Released(name) {
			done = append(done, name)
		}
	}
	c.mu.RUnlock()
	for _, name := range done {
		c.release(ctx, name)
	}
}

// release hands actor's owner key, if this member still holds it, to the
// member that should own it: put under that member's lease, so that it
// starts the actor on the watch event, with no acquire of its own (one
// Raft write and one pass less in the handover's pause). With no such
// member known, or a lease etcd no longer has, the key is deleted and
// whoever should own it acquires it.
func (c *Cluster) release(ctx context.Context, name string) {
	k := c.keys.owner(name)
	mine := clientv3.Compare(clientv3.Value(k), "=", c.cfg.Member)
	c.mu.RLock()
	members := make([]string, 0, len(c.members))
	for m := range c.members {
		members = append(members, m)
	}
	to := desired(members, name)
	lease, known := c.leases[to]
	c.mu.RUnlock()
	var resp *clientv3.TxnResponse
	var err error
	handed := false
	if known && lease != 0 && to != c.cfg.Member {
		resp, err = c.client.Txn(ctx).If(mine).Then(clientv3.OpPut(k, to, clientv3.WithLease(lease))).Commit()
		handed = err == nil
		if err != nil && ctx.Err() == nil {
			c.log.Debug("cluster: could not hand an actor's key to its new owner; deleting it", "actor", name, "to", to, "err", err)
			resp, err = nil, nil
		}
	}
	if resp == nil && err == nil {
		resp, err = c.client.Txn(ctx).If(mine).Then(clientv3.OpDelete(k)).Commit()
	}
	if err != nil {
		c.log.Warn("cluster: give an actor up", "actor", name, "err", err)
		return
	}
	c.mu.Lock()
	if resp.Succeeded && resp.Header.Revision >= c.ownRev[name] {
		delete(c.owners, name)
		if handed {
			c.owners[name] = to
		}
		delete(c.giving, name)
		c.ownRev[name] = resp.Header.Revision
	}
	c.mu.Unlock()
}

// dropGone deletes this member's owner keys of actors the registry no
// longer has (destroyed), which would otherwise pile up.
func (c *Cluster) dropGone(ctx context.Context, names []string) {
	live := make(map[string]bool, len(names))
	for _, n := range names {
		live[n] = true
	}
	c.mu.RLock()
	var gone []string
	for actor, owner := range c.owners {
		if owner == c.cfg.Member && !live[actor] {
			gone = append(gone, actor)
		}
	}
	c.mu.RUnlock()
	for _, actor := range gone {
		c.release(ctx, actor)
	}
}
