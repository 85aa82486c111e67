// Package pebblestore is the embedded mailbox.Store, on
// github.com/cockroachdb/pebble (v2), in one directory on disk.
//
// # Key layout
//
// Every actor is given a numeric id (8 bytes, big-endian) when registered;
// sequence numbers are 8 bytes big-endian too, so an actor's messages sort
// in order and every per-actor key space (but the timers') is one
// contiguous range:
//
//	V                 format marker "graft-mailbox/1"
//	V g               open generation, bumped by every Open: epochs of
//	                  this open start at generation<<32 (actors.go)
//	A name            actor record (id, behaviour, status, epoch, created,
//	                  origin: "" for config, "virtual" or "spawn"; binary,
//	                  or JSON as written before: record.go)
//	S id              committed state (schema, module version, bytes)
//	C id              ack watermark: every seq <= it is committed
//	Q id seq          pending message (a fired timer's carries its timer id)
//	F id seq          failed attempts of a pending message, last error
//	I id msgid        idempotency index: msgid -> seq and sha256(payload)[:16]
//	                  (a reuse of the id with another payload is refused)
//	i id seq          the same, in seq order, for eviction
//	R id msgid        outcome of a committed message: reply or dead-letter error
//	D id seq          dead letter (JSON); seq >= 2^63: a timer's message whose
//	                  target was unknown, kept by its owner (keys.go)
//	T due id timerid  pending timer (id, owner, target, due, payload); due is
//	                  8 bytes big-endian Unix nanoseconds, so T sorts in
//	                  firing order; id is the owner's
//	t id timerid      owner index: due of the owner's pending timer
//	H n               upgrade history record (JSON)
//
// Every key of an actor but its timers lies in a range that starts with
// [prefix][id]; its timers are found through its owner index. Remove
// deletes all of it, and the registry record, in one batch.
//
// In memory, besides each actor's counters, the store keeps a timer index
// (timerindex.go: due, owner, id of every pending timer, in a heap) loaded
// by Open, so NextTimer and FireDue never scan the 'T' range and its
// tombstones.
//
// # Enqueue
//
//	resolve name: registered, or virtual -> creation (A name in this batch)
//	lock actor; check id (pending sends, then I); seq := next++; unlock
//	batch{[A name], Q seq, I msgid, i seq}; commit (fsync shared with
//	concurrent writers)
//	creation -> registry; lock actor; finish(seq): visible advances over
//	every finished seq; unlock; Notify; after the call: Created
//
// An actor being created (a virtual first send, a spawn) is kept out of
// the registry until its batch is durable; a concurrent write to the same
// name waits for that batch, so the actor is created once and no message
// is durable before its actor's record (spawn.go). A write resolves all
// the names it needs, in name order, before it reserves anything, so two
// writes never wait for each other.
//
// Sequence numbers are reserved in memory and batches can become durable
// out of order, so readers see only the contiguous finished prefix
// (visible). A write that fails leaves a hole that is finished too: the key
// does not exist and readers skip it.
//
// # Commit protocol
//
//	validate every commit (epoch, Through within (acked, visible], one
//	committer per actor, sizes, spawn and timer requests) before writing
//	anything
//	claim timers in the index: cancels (waiting for one being fired),
//	then sets of ids not pending
//	batch{ T/t deleted for cancels, T/t written for new timers
//	       D for dead letters (copied from Q, with attempts)
//	       DeleteRange Q (acked, Through], DeleteRange F likewise, C = Through
//	       S = state; R for replies; evict I/R/i older than the window
//	       resolve spawned and sent-to names in name order: A for the
//	       actors created (spawn or virtual; a spawn of a name with
//	       another behaviour fails the commit)
//	       Q/I/i: each created spawn's Init first, then the outgoing
//	       messages in the receivers' mailboxes }
//	commit (one fsync); then move the in-memory counters, the creations
//	into the registry, the reservations into visible, the timer index
//
// Reads start at the ack watermark (the iterator's lower bound), so the range
// tombstones that acks leave behind are never visited, and the engine's
// compactions reclaim their space.
//
// # Timers
//
//	FireDue: lock fireMu; claim up to max due timers in the index
//	batch{ delete T/t of each; resolve targets in name order (virtual ones
//	       created: A); Q in the target's mailbox, Sender = owner, timer
//	       id set; unknown target: D in the owner's area at 2^63 + n }
//	commit (one fsync); settle: fired timers leave the index (on failure
//	they stay pending); one whose record cannot be read is skipped,
//	reported, and kept out of the due heap until the next Open
//
// One batch holds the deletion and the message, so after any crash a timer
// is pending or fired, never both, never twice. The index's claims keep a
// commit's cancel and a firing off each other (timerindex.go), and fireMu
// keeps two FireDue calls, or FireDue and Remove, apart.
//
// # Relaxed durability
//
// See relaxed.go: the WAL's fsyncs are deferred to a ticker, while commits
// still wait for the write(2), so a process crash loses nothing.
//
// # Corruption policy
//
// Damage is never repaired silently and never costs acknowledged data
// without a word: Open refuses a damaged store with one *mailbox.CorruptError
// that names the store and the file at fault, and modifies nothing, so the
// refusal is the same on every try and restoring the file is enough.
//
//   - Clean shutdown. Close flushes the memtables to table files (so the
//     write-ahead logs hold nothing the tables do not), closes the engine
//     and writes graft-clean.json: every log's name, size and CRC-32C, and
//     a digest of every actor's ack watermark and last sequence number, of
//     the history and of the number of pending timers (clean.go). A store with the marker has no torn
//     write: any log that is missing, added, truncated, extended or changed
//     is refused by name, and after loading, counters that differ from the
//     digest (a table or manifest replaced or lost) are refused. Open
//     removes the marker once the store checks out.
//   - Crash. Without the marker the store recovers as after a crash. The
//     engine writes its logs in the format that records in every chunk how
//     far the log was fsynced (FormatWALSyncChunks), so damage can be told
//     from a torn tail: the newest log may end in a torn write (dropped, as
//     the engine does: it was never acknowledged), but an unreadable spot
//     followed by an intact chunk written after a sync beyond it is damage,
//     and the store is refused naming the log (waltail.go; the engine
//     alone checks only from the next 32 KiB block on). An older log must
//     read to its clean end; the engine refuses it otherwise, and the
//     error names it.
//   - Missing logs. graft-wals.json, the WAL ledger (ledger.go), lists
//     every log the engine created and has not deleted; a listed log that
//     is gone is refused by name instead of its writes vanishing.
//   - Table and manifest files are checksummed by the engine: damage found
//     at Open is refused, damage found later fails the reads of the
//     damaged range with a CorruptError and is logged.
//
// # Full disk
//
// A write-ahead log write that fails stops the engine (it panics: the
// batch is already applied in memory), so the store never lets one fail:
// it keeps headroom on its file system (space.go) and refuses a write that
// would eat into it, at once, with a *mailbox.DiskFullError (nothing is
// stored). Sends need the most headroom, commits a little less (actors
// keep draining after sends are refused), the engine's compactions and
// flushes less again, and the logs and manifest may use the last reserve.
// guardFS holds the engine's own bulk writes back the same way, and the
// errors the engine then retries are logged once and summarized every
// 10 s, not thousands of times a second. Free space is measured, so the
// store writes again by itself as soon as space is freed. Should the
// engine fail a commit anyway (an I/O error), the store turns its panic
// into a *mailbox.FailedError and refuses every call until a restart.
package pebblestore
