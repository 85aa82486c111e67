// Package mailbox defines graft's durable store: per-actor FIFO mailboxes,
// actor state, replies, dead letters and the upgrade history, behind the
// Store interface. It carries guarantees G1 (durable send) and G2
// (exactly-once effect) in the README's table of guarantees.
//
// The embedded backend lives in mailbox/pebblestore; mailbox/mailboxtest is
// the conformance suite every backend must pass. A backend on a distributed
// engine (etcd first: one Txn holds ack + state + outbox + an ownership
// check, and a lease fences a stale core) implements the same interface.
//
// # The message path
//
//	sender ──Enqueue──▶ mailbox (durable, seq assigned) ──Read──▶ actor goroutine
//	                                                             │ handle batch
//	                                                             ▼ (out of process)
//	        Commit{Through, State, Outgoing, Replies, DeadLetters,   ◀──┘
//	               Spawns, Timers, CancelTimers}
//	        = one atomic transaction: ack + state + outbox + replies + dead
//	          letters + spawned actors + timers set and cancelled
//
//	timer loop: sleep until NextTimer ──FireDue──▶ one atomic transaction
//	            per call: due timers deleted + their messages enqueued
//
// Read never removes anything; only Commit does, so a batch handed to a
// module that crashes is simply read again. Every message up to
// Commit.Through is acked at once, which is why a commit is all-or-nothing
// and a redelivered batch can never be applied twice.
//
// # Exactly-once from outside
//
// A send may carry an id. A retry with an id the actor accepted within the
// idempotency window (the actor's last Options.IdempotencyWindow messages,
// default 100,000) enqueues nothing and returns the original sequence number
// and, once committed, the stored reply or dead-letter error. Ids of acked
// messages older than the window are forgotten as commits go by.
//
// # Actors made at run time
//
// Besides the actors the config registers (Register), an actor can be
// spawned (Registry.Spawn, Commit.Spawns) or be virtual: Options.Virtual
// names the virtual actors, and the first message sent to one (an Enqueue,
// an Outgoing message, a Requeue, a fired timer) creates it in the same
// transaction as the message. Concurrent first sends create it once.
// Options.Created tells the core about every actor so created, once its
// transaction is durable. Actor.Origin says which way an actor came.
//
// # Timers
//
// A handler's timers are set and cancelled in its Commit, so they are
// part of its exactly-once effect; ids are the handler's own and a set of
// a pending id is a no-op, so a redelivered batch sets each timer once.
// FireDue turns due timers into ordinary messages (Message.TimerID set,
// the owner as Sender) in one transaction, so each fires exactly once.
//
// # Ownership
//
// Claim gives an actor a new, higher epoch; a Commit must carry the current
// epoch or it fails with ErrFenced. In the embedded store a file lock makes
// one process the owner of everything, and the epoch fences stale actor
// goroutines; a shared backend checks it inside the commit transaction.
//
// # Durability modes
//
//   - sync (default): Enqueue and Commit return after fsync. Concurrent
//     writers share fsyncs (group commit), so throughput grows with
//     concurrency. Nothing acknowledged is lost, even to a power cut.
//   - relaxed: Enqueue and Commit return once the write is in the
//     operating system's page cache; the log is fsynced every
//     Options.SyncInterval (default 50 ms). A kill -9 of the core loses
//     nothing; a machine crash can lose the last interval.
package mailbox
