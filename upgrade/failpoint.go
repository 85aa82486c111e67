package upgrade

// Failpoint names an instant of an upgrade at which a core built with the
// graftfailpoints build tag can be told to kill itself with SIGKILL, so the
// crash tests prove G4 at every durable step (see the package doc). In a
// release build (no tag) a failpoint is an empty function the compiler
// removes: nothing in the environment can make a production core kill
// itself.
type Failpoint string

const (
	// FailpointJournaled: the op is in the journal, no actor is paused.
	FailpointJournaled Failpoint = "journaled"
	// FailpointPaused: a group of actors is paused, nothing migrated.
	FailpointPaused Failpoint = "paused"
	// FailpointMigrated: a group's states are migrated in memory only.
	FailpointMigrated Failpoint = "migrated"
	// FailpointCommitted: a group's migrated states are committed, its
	// actors not yet resumed on the target module.
	FailpointCommitted Failpoint = "committed"
	// FailpointDone: the history and the journal say the op completed;
	// the old module is still running.
	FailpointDone Failpoint = "done"
)

// Failpoints lists every failpoint in the order an upgrade reaches them,
// for tests that kill the core at each.
func Failpoints() []Failpoint {
	return []Failpoint{FailpointJournaled, FailpointPaused, FailpointMigrated, FailpointCommitted, FailpointDone}
}
