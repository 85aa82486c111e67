// Package core ties the mailbox store and the plugin host into a running
// graft core: actors that own their state, an OTP-style supervision tree,
// exactly-once processing across plugin crashes and core restarts.
//
// # The actor loop
//
// Each actor is driven by one goroutine that exists only while there is
// work (an idle actor parks; the store's new-message notification kicks it
// awake):
//
//	      ┌────────────── kick (store notify, Resume) ──────────────┐
//	      ▼                                                         │
//	Read batch (<= BatchSize, from the ack watermark) ── empty ──▶ park
//	      │
//	module.Handle(state, batch)   one shared plugin process per behaviour
//	      │                        (or one per actor: OwnProcess)
//	      ├─ ok ──────────▶ Commit{ack through last, state, outgoing,
//	      │                        replies} in ONE store transaction,
//	      │                 then wake the Calls waiting on those ids
//	      ├─ message k failed ─▶ k > 0: handle the good prefix alone first;
//	      │                      k = 0: RecordFailure; dead-letter it after
//	      │                      MaxAttempts (its waiter gets the error)
//	      └─ module crashed / hung / broke protocol ─▶ the pool starts a new
//	                             generation; retry the batch in halves until
//	                             the poison message is alone (then as above)
//
// Because nothing is removed before the commit and the commit is atomic, a
// crash anywhere (plugin, core) redelivers at most the uncommitted batch,
// and the committed state never saw it: every message is applied exactly
// once, in sequence order (so in send order per sender) (G2).
//
// # Calls
//
// Call registers a waiter for (actor, id), then enqueues; the reply is
// committed with the effect and handed to the waiter. A retry with the same
// id finds the stored reply (mailbox idempotency). A handler's call
// (sdk Context.Call, over go-plugin's broker) carries an id derived from
// the calling message and the chain of callers; a call to an actor already
// on the chain fails at once with ErrCallCycle naming the cycle.
//
// # Supervision (OTP semantics)
//
// See tree.go: the root supervisor (one_for_one, never gives up, restarts
// a failed behaviour supervisor with backoff up to 30 s) has one supervisor
// per behaviour, configured by Config.Supervision (one_for_one,
// one_for_all or rest_for_one; restart intensity MaxRestarts in Period,
// then it fails upward; exponential backoff between restarts). Its children
// are the actors: permanent, transient or temporary, started concurrently
// and asynchronously, each start bounded by its behaviour's start timeout.
// A module crash is not an actor crash: the module pool restarts the
// process and the actor redelivers; an actor crashes (and is restarted by
// its supervisor) when its module cannot be started at all or the store
// refuses it.
//
// # Actors made at run time, and the config
//
// Configured actors come from Config.Actors and are registered by New.
// Others are made at run time (spawn.go) and live in the store's
// registry: spawned (Core.Spawn, or a handler's ctx.Spawn, committed with
// its effect, so a redelivered batch spawns once) or virtual (a behaviour
// with Virtual owns every name BEHAVIOUR/KEY; the first send, call or
// timer to such a name creates the actor in the same write as the
// message). The store reports each creation once it is durable
// (mailbox.Options.Created) and the core adds the actor to its
// behaviour's supervisor, unless it was destroyed meanwhile (creations
// and destroys of one name are serialized: membership.go); at start, New
// reads them back from the registry. Every configured behaviour has a
// supervisor, with configured actors or not, and one that the root
// restarts rebuilds its children from the current set of actors, not
// from the config alone.
//
// A configured actor that disappears from the config is not deleted: its
// registry entry, mailbox, state and timers stay, it is not started,
// messages sent to it queue, and Status shows it as "unconfigured"
// (StatusUnconfigured); listing it again runs it from where it was.
// DestroyActor removes an actor for good (registry entry, mailbox, state,
// replies, idempotency window, dead letters, the timers it set and the
// sends scheduled to it); the Calls waiting on it fail with ErrDestroyed.
// StopActor stops an actor and keeps everything.
//
// # Timers
//
// A handler's timers and cancels (ctx.SendAfter, SendAt, CancelTimer) go
// into its batch's Commit (effects.go): due times are computed at the
// commit, and they happen exactly once with the rest of the effect. One
// timer goroutine (timers.go) sleeps until the store's NextTimer, or
// until a commit sets an earlier timer, and calls FireDue, which turns
// due timers into ordinary messages (with their TimerID) in one atomic
// write; the store's notification wakes their actors. Timers that came
// due while the core was down fire at start, in due order. SendAfter
// schedules a send from outside (`graft send --after`), and SendAfterID
// one named by the caller's id, so that a retry schedules it once.
//
// # The swap point, and why the upgrade hooks are apart
//
// Pause holds an actor between two commits (its batch in flight commits
// first); messages keep arriving durably. The upgrade machinery migrates
// the committed state with the new module, commits it with the actor's
// epoch, and Resumes the actor on the new module (Swap does all of it for
// one actor).
//
// These hooks (LoadModule, UnloadModule, ActorsOf, State, Pause,
// CommitStates, AppendHistory, Swap) are methods of UpgradeHooks, which
// Core.Upgrades returns, not of Core; the types LoadedModule and Paused go
// with them. Core's own methods (Start, Send, Call, Spawn, SendAfter,
// Status, StopActor, DestroyActor, ReplaceState, Shutdown...) each keep the runtime's invariants by
// themselves and are safe for any caller; the hooks break them unless used
// in the upgrade protocol's order. A pause never resumed stalls its actor;
// a state committed outside a pause, or an actor resumed with another
// state than the one committed, makes the actor's memory and the store
// disagree; a resume on a module that cannot read the committed state
// fails every message; unloading a version an upgrade may move back onto
// loses the way back. Package upgrade consumes them through its Host
// interface (the start-up wiring passes c.Upgrades() to
// upgrade.Manager.Attach). The store, too, is handed out read-only
// (Core.Store is a mailbox.Reader): every write goes through the core's
// methods or these hooks.
//
// An operator's state repair (state.go: ReplaceState, ResetState, `graft
// state`) uses the same pause: the new state is committed with the actor's
// epoch and the actor resumes from it (a stopped actor is claimed instead,
// fencing any stale incarnation). A reset commits "no state", so the next
// message runs Init, also after a restart; each repair is a history record
// of kind "repair".
package core
