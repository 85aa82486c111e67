package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The watch keeps the cache current with other processes' writes: one
// etcd watch per kind it follows (heads, cursors, timers and, when the
// core listens for creations, actor records), each resumed where it
// stopped when etcd ends it (a leader election cancels watches that
// require a leader), so no event is skipped. Only a watch whose revision
// etcd has compacted away cannot resume: then the cache is reloaded, the
// heads that moved in the gap are notified and the actors created in it
// announced, so nothing waits for a wake-up that never comes.

// streams are the watched kinds, and the revision each has applied.
type streams map[string]int64

// watch runs until ctx ends, from the revision after rev.
func (s *Store) watch(ctx context.Context, rev int64) {
	defer close(s.done)
	pos := streams{kindHead: rev, kindCursor: rev, kindTimer: rev}
	if s.opts.Created != nil {
		pos[kindActor] = rev
	}
	for ctx.Err() == nil {
		err := s.watchFrom(ctx, pos)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, rpctypes.ErrCompacted) {
			s.opts.Logger.Debug("etcd store: watch ended; resuming where it stopped", "store", s.where(), "err", err)
			if waitOrDone(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		s.opts.Logger.Warn("etcd store: the watch fell behind etcd's compaction; reloading the counters", "store", s.where(), "err", err)
		if err := s.reload(ctx, pos); err != nil {
			s.opts.Logger.Warn("etcd store: reload failed; trying again", "err", err)
			if waitOrDone(ctx, time.Second) != nil {
				return
			}
		}
	}
}

func waitOrDone(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reload reads the cache again after a gap, notifies the heads that moved
// and announces the actors created since the oldest stream's position,
// and moves every stream to the reload's revision.
func (s *Store) reload(ctx context.Context, pos streams) error {
	c, rev, err := s.loadCache(ctx)
	if err != nil {
		return err
	}
	from := rev
	for _, r := range pos {
		from = min(from, r)
	}
	type moved struct {
		name string
		last uint64
	}
	var notify []moved
	s.cache.mu.Lock()
	for name, a := range c.actors {
		if old, ok := s.cache.actors[name]; a.exists && (!ok || a.last > old.last) {
			notify = append(notify, moved{name, a.last})
		}
	}
	s.cache.actors, s.cache.timers, s.cache.due, s.cache.watched = c.actors, c.timers, c.due, c.watched
	s.cache.mu.Unlock()
	if s.opts.Notify != nil {
		for _, m := range notify {
			s.opts.Notify(m.name, m.last)
		}
	}
	if s.opts.Created != nil {
		resp, err := s.kv.Get(ctx, s.k.prefix+kindActor, clientv3.WithPrefix(), clientv3.WithMinCreateRev(from+1), clientv3.WithRev(rev))
		if err != nil {
			return s.wrap("read the actors created during the watch's gap", err)
		}
		for _, kv := range resp.Kvs {
			s.createdElsewhere(string(kv.Key), kv.Value, kv.CreateRevision)
		}
	}
	for k := range pos {
		pos[k] = rev
	}
	return nil
}

// watchFrom applies events of every stream from its position on, until
// one of the watches ends; pos keeps what was applied.
func (s *Store) watchFrom(ctx context.Context, pos streams) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	type tagged struct {
		kind string
		resp clientv3.WatchResponse
		ok   bool
	}
	merged := make(chan tagged)
	for kind, rev := range pos {
		ch := s.client.Watch(wctx, s.k.prefix+kind, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		go func() {
			for {
				resp, ok := <-ch
				select {
				case merged <- tagged{kind, resp, ok}:
				case <-wctx.Done():
					return
				}
				if !ok {
					return
				}
			}
		}()
	}
	for {
		var t tagged
		select {
		case t = <-merged:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !t.ok {
			return fmt.Errorf("the watch of %q closed", t.kind)
		}
		if err := t.resp.Err(); err != nil {
			return err
		}
		for _, ev := range t.resp.Events {
			s.applyEvent(ev)
			pos[t.kind] = max(pos[t.kind], ev.Kv.ModRevision)
		}
		if t.resp.IsProgressNotify() {
			pos[t.kind] = max(pos[t.kind], t.resp.Header.Revision)
		}
	}
}
