// Package pebblestore is the embedded mailbox.Store, on
// github.com/cockroachdb/pebble (v2), in one directory on disk.
//
// # Key layout
//
// Every actor is given a numeric id (8 bytes, big-endian) when registered;
// sequence numbers are 8 bytes big-endian too, so an actor's messages sort
// in order and every per-actor key space is one contiguous range:
//
//	V                 format marker "graft-mailbox/1"
//	A name            actor record (JSON: id, behaviour, status, epoch)
//	S id              committed state (schema, module version, bytes)
//	C id              ack watermark: every seq <= it is committed
//	Q id seq          pending message
//	F id seq          failed attempts of a pending message, last error
//	I id msgid        idempotency index: msgid -> seq
//	i id seq          the same, in seq order, for eviction
//	R id msgid        outcome of a committed message: reply or dead-letter error
//	D id seq          dead letter (JSON)
//	H n               upgrade history record (JSON)
//
// # Enqueue
//
//	lock actor; check id (pending sends, then I); seq := next++; unlock
//	batch{Q seq, I msgid, i seq}; commit (fsync shared with concurrent writers)
//	lock actor; finish(seq): visible advances over every finished seq; unlock
//
// Sequence numbers are reserved in memory and batches can become durable
// out of order, so readers see only the contiguous finished prefix
// (visible). A write that fails leaves a hole that is finished too: the key
// does not exist and readers skip it.
//
// # Commit protocol
//
//	validate every commit (epoch, Through within (acked, visible], one
//	committer per actor) before writing anything
//	batch{ D for dead letters (copied from Q, with attempts)
//	       DeleteRange Q (acked, Through], DeleteRange F likewise, C = Through
//	       S = state; R for replies; evict I/R/i older than the window
//	       Q/I/i in the receivers' mailboxes for outgoing messages }
//	commit (one fsync); then move the in-memory counters
//
// Reads start at the ack watermark (the iterator's lower bound), so the range
// tombstones that acks leave behind are never visited, and the engine's
// compactions reclaim their space.
//
// # Relaxed durability
//
// See relaxed.go: the WAL's fsyncs are deferred to a ticker, while commits
// still wait for the write(2), so a process crash loses nothing.
package pebblestore
