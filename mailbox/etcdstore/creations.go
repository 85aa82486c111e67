package etcdstore

import "sync"

// creations makes Created fire once per actor in this process, whether
// the actor was made here (announced when the transaction answers) or by
// another process on the same prefix (announced when the watch sees its
// record appear). The watch also sees this process's creations, before or
// after their answer, and several of this process's transactions may try
// to create one name at once (concurrent first sends): each name keeps,
// while anything is in flight for it, what was tried, won and seen.
type creations struct {
	mu sync.Mutex
	m  map[string]*creation
}

// creation is the bookkeeping of one name.
type creation struct {
	inflight  int    // this process's transactions that try to create it
	ours      int64  // revision of this process's creation of it (0: none yet)
	seen      int64  // revision of the creation the watch saw (0: none yet)
	behaviour string // the behaviour the watch saw
}

func newCreations() *creations { return &creations{m: make(map[string]*creation)} }

// expect is called before a transaction that creates names is sent.
func (c *creations) expect(names map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range names {
		e := c.m[name]
		if e == nil {
			e = &creation{}
			c.m[name] = e
		}
		e.inflight++
	}
}

// won is called when the transaction committed at rev.
func (c *creations) won(names map[string]string, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range names {
		if e := c.m[name]; e != nil {
			e.inflight--
			e.ours = rev
			c.tidy(name, e)
		}
	}
}

// lost is called when the transaction did not commit; it returns the
// names whose creation the watch saw meanwhile and that no transaction
// of this process made: another process's, to announce now.
func (c *creations) lost(names map[string]string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missed map[string]string
	for name := range names {
		e := c.m[name]
		if e == nil {
			continue
		}
		e.inflight--
		if e.inflight == 0 && e.seen != 0 && e.seen != e.ours {
			if missed == nil {
				missed = make(map[string]string)
			}
			missed[name] = e.behaviour
			e.ours = e.seen // announced: its watch event is accounted for
		}
		c.tidy(name, e)
	}
	return missed
}

// saw is called by the watch for a record created at rev; it reports
// whether the creation is another process's, to announce.
func (c *creations) saw(name, behaviour string, rev int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[name]
	if e == nil {
		return true
	}
	e.seen, e.behaviour = rev, behaviour
	c.tidy(name, e)
	return false
}

// tidy drops a name with nothing in flight whose own creation, if any,
// the watch has seen.
func (c *creations) tidy(name string, e *creation) {
	if e.inflight == 0 && e.ours == e.seen {
		delete(c.m, name)
	}
}
