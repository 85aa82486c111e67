// Package upgrade moves a behaviour's actors from one module version to
// another while the core runs: the binary watcher (fsnotify), the module
// cache, the upgrade state machine, migration and rollback (guarantees G3
// and G4).
//
// # The state machine, and what is durable at each arrow
//
// Each stage is one method of the run of an op (transition.go), named in
// parentheses; the failpoints (type Failpoint) are where the crash tests
// kill the core.
//
//	rebuilt binary (watcher, debounced) or `graft upgrade`
//	  │ copy into the cache as modules/<sha256>    durable: cache file (fsync+rename)
//	  ▼
//	LOAD (load): start the new module beside the   nothing durable changes; a failure
//	  │   old; handshake, behaviour name            ends the op here, "failed" (old serves)
//	  ▼
//	CHECK (check): can it migrate every actor's    nothing durable changes; a failure
//	  │   schema? which actors are still to move?   ends the op here, "failed" (old serves)
//	  ▼
//	JOURNAL (journal): in_progress{from, to},      durable: journal.json (fsync+rename)
//	  │   to ∈ live                                 ── failpoint "journaled"
//	  ▼
//	MOVE GROUPS (moveGroups), for each group of GroupSize actors (moveGroup):
//	  MIGRATE AHEAD each committed state, the actors  nothing durable changes
//	  │   still serving (the first group's are then
//	  │   sent to the new module to warm it: premigrate.go)
//	  PAUSE all (each lets its batch in flight commit;  ── failpoint "paused"
//	  │   the state that batch commits is migrated
//	  │   while its commit syncs: PauseAhead)
//	  MIGRATE each committed state with the new module
//	  │   (reusing the one made ahead when the state
//	  │   is still the one it started from)
//	  │   (down-migration with the newer module for a
//	  │   rollback)                                 ── failpoint "migrated"
//	  COMMIT the group's states + module versions   durable: ONE store transaction
//	  │   (each with the actor's epoch)             ── failpoint "committed"
//	  │   any failure before the commit: the group resumes on the old module, state untouched: STOP
//	  RESUME each on the new module
//	  ▼
//	FINISH (finish):
//	  HISTORY: record "completed", with the steps   durable: store
//	  JOURNAL: current=to, the lineage grows by     durable: journal.json
//	  │   from (a rollback's shrinks), live={to}    ── failpoint "done"
//	  ▼
//	  stop the old module once no actor uses it
//
//	STOP (stop), after a failed group:             durable: journal.json, then history
//	  the op leaves the journal. No actor moved: all stay on the old version,
//	  the new module stops, "failed". Some moved: they stay, consistent, on
//	  the new version, "failed"; or, with Options.RollbackOnFailure,
//	  MOVE BACK (moveBack) moves them back group by group, "rolled back".
//
// A canary op (canary.go, bake.go) runs MOVE GROUPS for its canary group
// only, journals the bake, judges the group against the others over the
// bake window (health.go), then either MOVE GROUPS for the rest and
// FINISH, or moves the canary back; its phases are in canary.go. Every
// pause is bounded by Options.MaxPause (budget.go). A dry run (dryrun.go,
// replay.go) loads the new version and checks states and recent traffic
// against it, and moves nothing.
//
// The history's steps are only "load" (the behaviour's, Actor "") and
// "pause" (one per actor moved, from its pause to its resume, with the
// part of it spent waiting for the batch in flight, Drain; type Step);
// its outcomes are the Outcome constants.
//
// Messages keep arriving durably into the mailboxes of paused actors, and
// actors not yet moved keep serving on the old module, so nothing is
// dropped, reordered or refused (G3); senders see at most the pause.
//
// # Crash consistency (G4)
//
// Each actor's committed state records the module version and schema that
// wrote it, and the journal lists every live version with its cached
// binary. The Manager is the core's ModuleSelector, so a core restarted at
// any instant runs every actor on a binary that wrote (or, for the current
// version, can read) its committed state. An upgrade whose journal entry
// is still in progress is then finished: the actors already moved are
// skipped, the rest moved, and the history says "completed after a core
// restart" (or "abandoned after a core restart" if the new version no
// longer loads). A failure never leaves an actor between versions: its
// migrated state and its new module version commit in one transaction, or
// not at all.
//
// # Rollback walks back the lineage
//
// The journal keeps, per behaviour, the versions it ran before the current
// one (its lineage). An upgrade appends the version it leaves; a rollback
// returns to the last one and drops it, as Erlang's release handler does:
// v1 -> v2 -> v3, then rollback -> v2, then rollback -> v1; at the oldest
// version a rollback is refused (ErrNoPrevious) and says so.
//
// # What the core trusts (G9)
//
// Whoever can write what the core runs or believes can run code as the
// core's user, so the manager trusts, like ssh's StrictModes, only what
// that user (or root) could have written (the rules are in
// internal/trust):
//
//   - The binary cache folder (and every folder on its way) must be owned
//     by the core's user and not writable by group or others; New refuses
//     it otherwise, with the folder and the fix (`chmod go-w`, `chown`).
//   - The journal and every cached binary are opened without following
//     symbolic links and must be regular files owned by the core's user,
//     not writable by group or others; a cached binary must also hash to
//     its name. The journal is checked when it is read, and every version
//     that may hold actors when the core starts (Prepare); the version a
//     rollback returns to is checked before it is loaded. A version's
//     binary is always the cache entry named by its sha256, whatever path
//     the journal holds.
//   - A binary offered for an upgrade (a watched rebuild, `graft upgrade
//     --binary`, the configured binary at first start) must be owned by
//     the core's user or root and not writable by group or others, unless
//     the config pins its sha256: the check is made on the open file the
//     cache copies from, so what is checked is what runs. A refused binary
//     is logged and recorded in the history as "refused"; the old version
//     keeps serving. A relative --binary is refused: the core cannot know
//     the folder it was meant against (the CLI sends absolute paths).
//   - A configured binary that was deleted is not needed once its version
//     is cached: the core starts from the cache and warns.
//
// Failpoints are test machinery and are not in a release build: in a core
// built with -tags graftfailpoints, GRAFT_FAILPOINT=<failpoint> in its
// environment kills it with SIGKILL at that failpoint. The crash tests
// build such a core (testdata/crashcore) and kill it at each one.
package upgrade
