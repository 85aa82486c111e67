package core

// Hooks into the core's supervision state for the tests of package
// core_test, which otherwise see only what Status shows (it lists the
// store's actors, so a child supervised for an actor the store no longer
// has would not show there).

// SupervisedChildren maps the id of every child of every behaviour
// supervisor to its state.
func SupervisedChildren(c *Core) map[string]string {
	out := map[string]string{}
	for id, st := range c.childStatuses() {
		out[id] = st.State.String()
	}
	return out
}

// Supervises says whether name is in the core's supervised set (c.specs),
// from which a behaviour supervisor that the root restarts rebuilds its
// children.
func Supervises(c *Core, name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.specs[name]
	return ok
}

// AddStaleChild adds a child for name, an actor of behaviour made at run
// time, to its behaviour's supervisor without looking at the store or the
// supervised set: the state a behaviour supervisor rebuilt from a list of
// actors taken just before one of them was destroyed is in.
func AddStaleChild(c *Core, name, behaviour string) {
	c.mu.RLock()
	sub := c.subs[behaviour]
	c.mu.RUnlock()
	c.addChild(sub, runtimeSpec(name, behaviour), true)
}

// WakeLater queues a wake of the passive actor name, as a notification
// of a new message does.
func WakeLater(c *Core, name string) { c.wakeLater(name) }

// WakeQueued says whether a wake of name is queued and not over yet.
func WakeQueued(c *Core, name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.asleep[name]
}
