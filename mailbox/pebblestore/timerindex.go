package pebblestore

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
)

// The in-memory timer index. It mirrors the owner index on disk ('t' owner
// timerid -> due), is loaded by Open, and holds what the timer loop and
// the commits need without reading the disk: the earliest due time
// (NextTimer), which timers are due (FireDue), whether an id is pending
// (a set of a pending id is a no-op). It holds no payloads: 100,000 timers
// cost a few MiB.
//
// It is also where the writers that touch one timer meet. A pebble batch
// does not check what was read, so two batches must never both act on one
// timer: an entry is claimed by at most one writer at a time, and the
// writer's txn settles it when its batch is durable or abandoned:
//
//	pending     in the heap; FireDue may claim it (firing), a commit of
//	            its owner may cancel it (cancelling)
//	inserting   set by a commit whose batch is not durable yet: not in the
//	            heap (not on disk either), but a second set of the id is a
//	            no-op
//	firing      claimed by FireDue; a cancel waits for the firing to end
//	cancelling  claimed by a commit (or Unschedule, or its target's
//	            Remove, for one set from outside) that deletes it
//	unreadable  its record could not be read when FireDue claimed it: out
//	            of the heap (so it does not block the timers due after it)
//	            until the store is opened again; a cancel still deletes it
//
// One committer per actor (the commit protocol) means an entry has at most
// one commit acting on it, and FireDue is serialized (Store.fireMu), so
// the claims never overlap.
//
// The timers set from outside (owner 0, schedule.go) are also indexed by
// target, so that Scheduled, Unschedule and the target's Remove find them
// without reading every one.

// timerEntry is one pending timer.
type timerEntry struct {
	owner uint64 // the owner's actor id
	id    string
	due   int64 // Unix nanoseconds, as in the key
	index int   // position in the heap, -1 when not in it

	// to is the target of a timer set from outside (byTarget's key); ""
	// for an actor's timer, or when its record could not be read at Open.
	to string

	inserting, cancelling bool
	firing                chan struct{} // non-nil while claimed by FireDue; closed when settled
	gone                  bool          // durably deleted (fired or cancelled), or never written
	unreadable            bool          // its record could not be read: not put back in the heap
}

func (e *timerEntry) busy() bool { return e.inserting || e.cancelling || e.firing != nil }

// timerOp is what a txn did to an entry, settled by timerIndex.settle.
type timerOp struct {
	e    *timerEntry
	kind timerOpKind
}

type timerOpKind uint8

const (
	opSet timerOpKind = iota
	opCancel
	opFire
	opSkip // claimed by FireDue, record unreadable: left in place
)

// timerIndex is the store's timer index.
type timerIndex struct {
	mu      sync.Mutex
	byOwner map[uint64]map[string]*timerEntry
	// byTarget holds the timers set from outside, by target and id.
	byTarget map[string]map[string]*timerEntry
	heap     timerHeap
	count    int
}

func newTimerIndex() *timerIndex {
	return &timerIndex{byOwner: make(map[uint64]map[string]*timerEntry), byTarget: make(map[string]map[string]*timerEntry)}
}

// add inserts e into byOwner and byTarget (not the heap). Callers hold
// x.mu.
func (x *timerIndex) add(e *timerEntry) {
	m := x.byOwner[e.owner]
	if m == nil {
		m = make(map[string]*timerEntry)
		x.byOwner[e.owner] = m
	}
	m[e.id] = e
	x.count++
	if e.owner != outsideOwner || e.to == "" {
		return
	}
	t := x.byTarget[e.to]
	if t == nil {
		t = make(map[string]*timerEntry)
		x.byTarget[e.to] = t
	}
	t[e.id] = e
}

// forget removes e from byOwner and byTarget. Callers hold x.mu.
func (x *timerIndex) forget(e *timerEntry) {
	m := x.byOwner[e.owner]
	if m[e.id] != e {
		return
	}
	delete(m, e.id)
	x.count--
	if len(m) == 0 {
		delete(x.byOwner, e.owner)
	}
	if t := x.byTarget[e.to]; e.owner == outsideOwner && t[e.id] == e {
		delete(t, e.id)
		if len(t) == 0 {
			delete(x.byTarget, e.to)
		}
	}
}

// load adds a timer found on disk by Open; to is the target of one set
// from outside.
func (x *timerIndex) load(owner uint64, id string, due int64, to string) {
	e := &timerEntry{owner: owner, id: id, due: due, to: to, index: len(x.heap)}
	x.add(e)
	x.heap = append(x.heap, e)
}

// loaded orders the heap once Open has loaded every timer.
func (x *timerIndex) loaded() { heap.Init(&x.heap) }

// place puts a settled entry where its state says: gone ones leave the
// index, pending ones go back into the heap. Callers hold x.mu.
func (x *timerIndex) place(e *timerEntry) {
	switch {
	case e.busy():
	case e.gone:
		x.forget(e)
	case e.index < 0 && !e.unreadable:
		heap.Push(&x.heap, e)
	}
}

// startSet claims a new entry for a commit that sets the timer, or returns
// nil if the owner has the id pending already (or is setting it). to is
// the target of a timer set from outside (outsideOwner), indexed by it.
func (x *timerIndex) startSet(owner uint64, id string, due int64, to string) *timerEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byOwner[owner][id] != nil {
		return nil
	}
	e := &timerEntry{owner: owner, id: id, due: due, index: -1, inserting: true}
	if owner == outsideOwner {
		e.to = to
	}
	x.add(e)
	return e
}

// startCancel claims the pending entry for a commit that cancels it; nil
// if there is none. A timer that is firing is waited for: then it is gone
// (nothing to cancel), or its firing failed and it is cancelled.
func (x *timerIndex) startCancel(ctx context.Context, owner uint64, id string) (*timerEntry, error) {
	return x.cancelEntry(ctx, owner, id, nil)
}

// cancelEntry is startCancel; with want not nil, only that entry is
// claimed (not a later timer that has the id now).
func (x *timerIndex) cancelEntry(ctx context.Context, owner uint64, id string, want *timerEntry) (*timerEntry, error) {
	for {
		x.mu.Lock()
		e := x.byOwner[owner][id]
		switch {
		case e == nil || e.gone || e.inserting || e.cancelling || (want != nil && e != want):
			x.mu.Unlock()
			return nil, nil
		case e.firing != nil:
			wait := e.firing
			x.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("cancel timer %q: waiting for it to finish firing: %w", id, ctx.Err())
			}
		}
		if e.index >= 0 { // an unreadable one is out of the heap
			heap.Remove(&x.heap, e.index)
		}
		e.cancelling = true
		x.mu.Unlock()
		return e, nil
	}
}

// outsideTo lists the timers set from outside whose target is to,
// pending or being set. Their owner, id, due and to never change, so the
// caller may read those without x.mu.
func (x *timerIndex) outsideTo(to string) []*timerEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]*timerEntry, 0, len(x.byTarget[to]))
	for _, e := range x.byTarget[to] {
		if !e.gone {
			out = append(out, e)
		}
	}
	return out
}

// claimOutsideTo claims for cancelling every pending timer set from
// outside whose target is to, for that target's Remove. Remove holds
// fireMu, so none is firing; one that another write is setting or
// cancelling is left to that write.
func (x *timerIndex) claimOutsideTo(to string) []*timerEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*timerEntry
	for _, e := range x.byTarget[to] {
		if e.gone || e.busy() {
			continue
		}
		if e.index >= 0 {
			heap.Remove(&x.heap, e.index)
		}
		e.cancelling = true
		out = append(out, e)
	}
	return out
}

// claimDue claims up to max timers due at or before now, earliest first,
// for FireDue.
func (x *timerIndex) claimDue(now int64, max int) []*timerEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*timerEntry
	for len(out) < max && len(x.heap) > 0 && x.heap[0].due <= now {
		e := heap.Pop(&x.heap).(*timerEntry)
		e.firing = make(chan struct{})
		out = append(out, e)
	}
	return out
}

// settle ends a txn's claims: err nil means its batch is durable.
func (x *timerIndex) settle(ops []timerOp, err error) {
	var fired []chan struct{}
	x.mu.Lock()
	for _, op := range ops {
		e := op.e
		switch op.kind {
		case opSet:
			e.inserting = false
			e.gone = err != nil
		case opCancel:
			e.cancelling = false
			e.gone = err == nil
		case opFire:
			fired = append(fired, e.firing)
			e.firing = nil
			e.gone = err == nil
		case opSkip: // unreadable whether the batch committed or not
			fired = append(fired, e.firing)
			e.firing = nil
			e.unreadable = true
		}
		x.place(e)
	}
	x.mu.Unlock()
	for _, ch := range fired {
		close(ch)
	}
}

// dropOwner forgets every timer of a removed actor. Remove calls it with
// no claim in progress on them (it holds fireMu and waited for the
// actor's commit).
func (x *timerIndex) dropOwner(owner uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.byOwner[owner] {
		if e.index >= 0 {
			heap.Remove(&x.heap, e.index)
		}
		x.count--
	}
	delete(x.byOwner, owner)
}

// next returns the earliest due time in the heap.
func (x *timerIndex) next() (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.heap) == 0 {
		return 0, false
	}
	return x.heap[0].due, true
}

// size is how many timers the index holds.
func (x *timerIndex) size() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.count
}

// timerHeap orders entries as their 'T' keys sort: due, owner, id.
type timerHeap []*timerEntry

func (h timerHeap) Len() int { return len(h) }

func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.due != b.due {
		return a.due < b.due
	}
	if a.owner != b.owner {
		return a.owner < b.owner
	}
	return a.id < b.id
}

func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *timerHeap) Push(v any) {
	e := v.(*timerEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
