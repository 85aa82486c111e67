// Package etcdstore is the mailbox.Store on an etcd cluster
// (go.etcd.io/etcd/client/v3), for cores that must survive the loss of a
// machine: every acknowledged write is on a quorum of members.
//
// It trades throughput for that: every send and every commit is a Raft
// round trip and an fsync on a majority of members, a few thousand
// transactions per second for a 3-member cluster on one machine, against
// the embedded store's tens of thousands (docs/BENCHMARKS.md).
//
// # Key layout
//
// Under the store's prefix P (store.prefix + "/"); NAME is an actor's
// name, which never holds a control character, so the NUL (shown \0)
// after it ends it and each actor's keys of one kind are one range; SEQ
// is 16 hex digits, so those ranges sort in sequence order:
//
//	P v               format marker "graft-etcdstore/1"
//	P a/NAME          actor record (behaviour, status, created, origin)
//	P e/NAME          ownership epoch, a decimal counter; kept by Remove
//	P n/NAME          mailbox head: the last sequence number taken
//	P c/NAME          cursor: ack watermark, dead-letter count, module and
//	                  schema of the committed state (what the owner moves)
//	P s/NAME          committed state
//	P q/NAME\0SEQ     pending message, with its attempts and last error
//	P i/NAME\0MSGID   idempotency record: seq, sha256(payload)[:16] and,
//	                  once committed, the outcome (reply, refusal, dead)
//	P j/NAME\0SEQ     MSGID, in seq order, to evict records out of the window
//	P d/NAME\0SEQ     dead letter; SEQ >= 2^63: a timer's message whose
//	                  target was unknown, kept by its owner
//	P t/OWNER\0ID     pending timer (target, due, payload)
//	P w/NAME\0SEQ     batch kept for dry runs, by the last seq it acked
//	P H, P h/ID       upgrade history: the last id, and each record
//
// Values are JSON (records.go).
//
// # Transactions
//
// Every write is one etcd transaction built by an optimistic
// read-modify-write (txn.go): the keys it depends on are read (one round
// trip, served by the nearest member), the writes decided, and the commit
// is guarded by those keys' mod revisions. A guard that fails means
// another writer moved a key in between: the write is built again, on
// linearizable reads. So the guard, not a lock, is what orders writers,
// in this process and in any other one on the same prefix.
//
//	Enqueue(NAME, msg)
//	  read  a/NAME, n/NAME [, i/NAME\0ID, c/NAME]     (virtual: a absent)
//	  if    ModRevision(every key read) unchanged
//	  then  [a/NAME, c/NAME, n/NAME=0: a virtual actor created]
//	        q/NAME\0(last+1) = msg; n/NAME = last+1
//	        [i/NAME\0ID = {seq, sum}; j/NAME\0SEQ = ID]
//	  else  build again        (a duplicate id: no write, its receipt)
//
//	Commit(NAME, epoch, through, state, outgoing, replies, ...)
//	  read  a, e, c, n of NAME; q of its dead letters; i of its replies;
//	        a, n (and i) of each receiver; t of each timer set or cancelled
//	  check e/NAME == epoch (else ErrFenced), acked < through <= last
//	  if    ModRevision(every key read) unchanged
//	  then  d/NAME\0SEQ for dead letters; delete q/NAME\0(acked, through]
//	        s/NAME = state; c/NAME = {through, dead, module, schema}
//	        i/NAME\0ID outcomes; evict ids out of the window (j, i)
//	        spawned actors (a, c, n) and their Init; each outgoing message
//	        appended as Enqueue does; timers put and deleted; w/NAME\0SEQ
//	  else  build again
//
// The epoch in the guard is what fences a stale owner: a core that lost
// an actor to another one (which claimed it: e/NAME moved) can no longer
// commit anything for it, whatever its own memory says. A message becomes
// readable with its head in one transaction, so a reader never sees a
// message before one with a lower sequence number.
//
// # The cache
//
// Stats, Backlog and NextTimer answer without a round trip, from a cache
// of every actor's head and cursor and of the pending timers (cache.go).
// Open loads it at one revision and watches n/, c/ and t/ from the next
// one, so other processes' writes reach it; this process's writes move
// it as soon as they commit. Entries carry their revision and an older
// value never replaces a newer one. A watch that falls behind etcd's
// compaction reloads the cache.
//
// # Limits
//
// etcd bounds a request (--max-request-bytes, 1.5 MiB by default) and a
// transaction's operations (--max-txn-ops, 128 by default). A commit of a
// batch of 64 messages that each reply and send needs several hundred
// operations, so graft's members run with --max-txn-ops 4096 and the
// store is told (store.max_txn_ops); a write beyond either limit is
// refused before it is sent, or by etcd, with an error naming the limit
// to raise (errors.go). A cluster over its space quota refuses writes
// with a *QuotaError, which wraps mailbox.ErrDiskFull, so the core waits
// for space as it does on a full disk.
//
// # Why by hand
//
// etcd's client gives transactions, leases and watches; what a mailbox
// store is made of from them is graft's own: no library offers a durable
// mailbox on etcd. The optimistic transaction is concurrency.STM's idea,
// written again because STM has no range reads or range deletes.
package etcdstore
