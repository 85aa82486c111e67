package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// txn is one optimistic read-modify-write transaction, in the manner of
// clientv3/concurrency's STM with serializable snapshots: a build
// function reads the keys it needs (prefetched in one round trip,
// served by the nearest member), decides and queues writes; the commit
// is one etcd Txn whose guard is that none of the keys read has changed
// (their mod revisions, 0 for a key that was absent). If one did, the
// build runs again on fresh reads. The guard is what makes every write of
// the store linearizable: a sequence number is taken from a head that
// nobody moved, an epoch is checked against the value it still has.
//
// It is written here rather than taken from concurrency.STM because the
// store needs range deletions (an ack drops a range of the mailbox) and
// range reads within the same guard, which STM does not offer.
type txn struct {
	s     *Store
	reads map[string]readKV
	ops   []clientv3.Op
	// linearizable is set on a retry: serializable reads may be stale,
	// and a second conflict must not come from the same stale member.
	linearizable bool
	// after runs once the transaction committed, with its revision.
	after []func(rev int64)
	// putAt indexes the puts in ops by key: etcd refuses a transaction
	// that writes one key twice, so a second put replaces the first.
	putAt map[string]int
	// heads are the mailbox heads this transaction moved (appendMsg),
	// created the actors it creates, by behaviour.
	heads   map[string]uint64
	created map[string]string
	// guessed are the keys read from the hot-key cache, not from etcd:
	// dropped from it if the guard fails.
	guessed []string
	// ids are the idempotency records t writes, by key; cursors the
	// actors' cursors it writes.
	ids     map[string]idRecord
	cursors map[string]cursorRecord
}

// readKV is one key as the build saw it.
type readKV struct {
	value []byte
	mod   int64
	lease int64
}

// get prefetches keys not read yet, in one round trip.
func (t *txn) get(ctx context.Context, keys ...string) error {
	var ops []clientv3.Op
	var want []string
	for _, k := range keys {
		if _, ok := t.reads[k]; ok {
			continue
		}
		if !t.linearizable && t.s.hot(k) {
			if kv, ok := t.s.hotKeys.get(k); ok {
				t.reads[k] = kv
				t.guessed = append(t.guessed, k)
				continue
			}
		}
		want = append(want, k)
		ops = append(ops, t.getOp(k))
	}
	if len(ops) == 0 {
		return nil
	}
	resp, err := t.s.kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return t.s.wrap("read", err)
	}
	for i, r := range resp.Responses {
		kv := readKV{}
		if g := r.GetResponseRange(); g != nil && len(g.Kvs) > 0 {
			kv = readKV{value: g.Kvs[0].Value, mod: g.Kvs[0].ModRevision, lease: g.Kvs[0].Lease}
		}
		t.reads[want[i]] = kv
		if t.s.hot(want[i]) {
			t.s.hotKeys.set(want[i], kv)
		}
	}
	return nil
}

func (t *txn) getOp(k string, opts ...clientv3.OpOption) clientv3.Op {
	if !t.linearizable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return clientv3.OpGet(k, opts...)
}

// value returns a key read with get (nil, false if absent).
func (t *txn) value(k string) ([]byte, bool) {
	kv, ok := t.reads[k]
	if !ok {
		panic("etcdstore: key used before it was read: " + k) // a bug in this package
	}
	return kv.value, kv.mod != 0
}

// scan reads up to limit keys of the range [from, end) (limit 0: all),
// guarding each one it returns; keys outside it are not guarded, so a
// scan is for ranges that only this transaction's writer adds to.
func (t *txn) scan(ctx context.Context, from, end string, limit int64, extra ...clientv3.OpOption) ([]string, error) {
	opts := append([]clientv3.OpOption{clientv3.WithRange(end)}, extra...)
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	if !t.linearizable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := t.s.kv.Get(ctx, from, opts...)
	if err != nil {
		return nil, t.s.wrap("read", err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		t.reads[k] = readKV{value: kv.Value, mod: kv.ModRevision}
		out = append(out, k)
	}
	return out, nil
}

func (t *txn) put(k, v string) {
	if i, ok := t.putAt[k]; ok {
		t.ops[i] = clientv3.OpPut(k, v)
		return
	}
	if t.putAt == nil {
		t.putAt = make(map[string]int)
	}
	t.putAt[k] = len(t.ops)
	t.ops = append(t.ops, clientv3.OpPut(k, v))
}
func (t *txn) del(k string) { t.ops = append(t.ops, clientv3.OpDelete(k)) }

// delRange deletes every key in [from, end).
func (t *txn) delRange(from, end string) {
	t.ops = append(t.ops, clientv3.OpDelete(from, clientv3.WithRange(end)))
}

// onCommit queues fn to run after the transaction committed.
func (t *txn) onCommit(fn func(rev int64)) { t.after = append(t.after, fn) }

// errRetry, returned by a build, runs it again on fresh reads (a key it
// needs moved under it, seen before the commit).
var errRetry = errors.New("etcdstore: read again")

// maxConflicts bounds the retries of one update: contention that lasts
// this long is reported rather than spun on.
const maxConflicts = 200

// update runs build until its transaction commits with none of its reads
// changed, and returns the commit's revision. An error from build ends it
// with nothing written.
func (s *Store) update(ctx context.Context, what string, build func(t *txn) error) (int64, error) {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		t := &txn{s: s, reads: make(map[string]readKV), linearizable: attempt > 0}
		err := build(t)
		if errors.Is(err, errRetry) && attempt >= maxConflicts {
			return 0, fmt.Errorf("%s: the keys it reads kept changing: retry later", what)
		}
		if err != nil && len(t.guessed) > 0 && attempt == 0 && !errors.Is(err, errRetry) {
			// A refusal may come from a stale guess (an epoch, a head):
			// decide it again on what etcd holds.
			s.hotKeys.drop(t.guessed)
			continue
		}
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if len(t.ops) == 0 {
			if len(t.guessed) > 0 && attempt == 0 {
				// A decision to write nothing (an actor exists, an id is
				// a duplicate) must not rest on a guess: decide it again
				// on what etcd holds.
				s.hotKeys.drop(t.guessed)
				continue
			}
			return 0, nil
		}
		if len(t.ops) > s.cfg.MaxTxnOps {
			return 0, s.tooManyOps(what, len(t.ops))
		}
		if size := t.size(); size > s.cfg.MaxRequestBytes {
			return 0, s.tooLarge(what, size)
		}
		guard := make([]clientv3.Cmp, 0, len(t.reads))
		for k, kv := range t.reads {
			guard = append(guard, clientv3.Compare(clientv3.ModRevision(k), "=", kv.mod))
		}
		s.expectCreations(t)
		resp, err := s.kv.Txn(ctx).If(guard...).Then(t.ops...).Commit()
		if errors.Is(err, rpctypes.ErrNoSpace) {
			// etcd applies the write that crosses the quota, then raises
			// the alarm and answers "no space": find out whether it landed.
			if rev, ok := s.landed(ctx, t); ok {
				s.committed(t.ops, rev)
				s.settle(t, rev)
				return rev, nil
			}
		}
		if err != nil || !resp.Succeeded {
			s.unexpectCreations(t)
		}
		if err != nil {
			return 0, s.wrap(what, err)
		}
		if resp.Succeeded {
			s.committed(t.ops, resp.Header.Revision)
			s.settle(t, resp.Header.Revision)
			return resp.Header.Revision, nil
		}
		s.hotKeys.drop(t.guessed)
		if attempt >= maxConflicts {
			return 0, fmt.Errorf("%s: %d conflicting writes in a row on the same keys: retry later", what, attempt+1)
		}
		// Back off a little, at random, so two writers on one key part.
		if attempt > 2 {
			d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))) //nolint:gosec // G404: jitter, not a secret
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
	}
}

// settle moves the cache by a committed transaction, then tells the core:
// Notify for each mailbox it appended to, Created for each actor it made.
func (s *Store) settle(t *txn, rev int64) {
	for _, fn := range t.after {
		fn(rev)
	}
	for name, cur := range t.cursors {
		s.cache.setCursor(name, cur, rev, false)
		s.cursorWaiters.wake(name)
	}
	for name, last := range t.heads {
		if s.cache.setHead(name, last, rev, false) && last > 0 && s.opts.Notify != nil {
			s.opts.Notify(name, last)
		}
	}
	if s.opts.Created != nil && len(t.created) > 0 {
		s.creations.won(t.created, rev)
		for name, behaviour := range t.created {
			s.opts.Created(name, behaviour)
		}
	}
}

// size is about what the transaction weighs on the wire: its keys and
// values, and the keys of its guard.
func (t *txn) size() int {
	n := 0
	for _, op := range t.ops {
		n += len(op.KeyBytes()) + len(op.ValueBytes()) + len(op.RangeBytes()) + 8
	}
	for k := range t.reads {
		n += len(k) + 16
	}
	return n
}

// expectCreations notes, before t is sent, the actors it creates, so
// that the watch does not announce them as another process's.
func (s *Store) expectCreations(t *txn) {
	if s.opts.Created != nil && len(t.created) > 0 {
		s.creations.expect(t.created)
	}
}

// unexpectCreations undoes expectCreations for a transaction that did
// not commit (or whose outcome is unknown), and announces the creations
// of those names the watch saw meanwhile: another process's.
func (s *Store) unexpectCreations(t *txn) {
	if s.opts.Created == nil || len(t.created) == 0 {
		return
	}
	for name, behaviour := range s.creations.lost(t.created) {
		s.opts.Created(name, behaviour)
	}
}

// landed tells whether t, answered with "no space", was applied anyway:
// etcd's quota applier applies the transaction that crosses the quota
// before it raises the alarm (server/etcdserver/apply/quota.go), so that
// answer does not mean nothing was written. t landed if every key it put
// holds what it put, all at one revision, newer than every key it read
// (one transaction's puts share its revision). Reads still work with the
// alarm raised; a failed read counts as not landed, which leaves the
// caller's retry-with-the-same-id contract as for any lost answer.
func (s *Store) landed(ctx context.Context, t *txn) (int64, bool) {
	var ops []clientv3.Op
	var want [][]byte
	for _, op := range t.ops {
		if op.IsPut() {
			ops = append(ops, clientv3.OpGet(string(op.KeyBytes())))
			want = append(want, op.ValueBytes())
		}
	}
	if len(ops) == 0 {
		return 0, false
	}
	resp, err := s.kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, false
	}
	var rev int64
	for i, r := range resp.Responses {
		g := r.GetResponseRange()
		if g == nil || len(g.Kvs) == 0 || !bytes.Equal(g.Kvs[0].Value, want[i]) {
			return 0, false
		}
		if rev != 0 && g.Kvs[0].ModRevision != rev {
			return 0, false
		}
		rev = g.Kvs[0].ModRevision
	}
	for _, kv := range t.reads {
		if kv.mod >= rev {
			return 0, false
		}
	}
	return rev, true
}
