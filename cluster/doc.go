// Package cluster makes several graft cores over one etcd store one
// cluster: each core is a member, the store's actors are spread over the
// live members, and a member that dies or stops answering loses its
// actors to the others within its lease.
//
// # Ownership protocol
//
// Keys under the store's prefix P (etcd leases and watches do the work;
// no member is a leader):
//
//	P/cluster/m/MEMBER   member record (pid, control socket, since),
//	                     under the member's lease
//	P/cluster/o/ACTOR    the member that owns ACTOR, under that member's
//	                     lease: it vanishes with the member
//	P/e/ACTOR            the store's epoch of ACTOR (mailbox/etcdstore),
//	                     moved by whoever starts it (Claim)
//
// Every member computes the same wanted owner of each actor, the
// rendezvous hash of (member, actor) over the live members, so a
// member's arrival or departure moves only the actors that go to or come
// from it. Each member then reconciles, on every change it watches and
// every half lease:
//
//	wanted = me, no owner    ─▶ create o/ACTOR under my lease (a guarded
//	                            txn: one creator wins) ─▶ core.Rebalance
//	                            wakes it: Claim (e/ACTOR+1), read state
//	owner = me, wanted = B   ─▶ Owns(ACTOR) = false ─▶ core.Rebalance
//	                            stops it between two commits ─▶ put
//	                            o/ACTOR = B under B's lease (if still
//	                            mine; B's lease is its member key's) ─▶
//	                            B's watch: core.Rebalance wakes it (if
//	                            B's lease is gone: delete o/ACTOR, and
//	                            whoever is wanted acquires it)
//	my lease lost            ─▶ Owns = false for all ─▶ step down:
//	                            release every actor, log it, join again
//	ctx ends (graft stops)   ─▶ after the core stopped: revoke the lease,
//	                            so the others take over at once
//
// A member killed with kill -9, or stopped (SIGSTOP) past its lease,
// loses its keys when the lease expires; the others see the deletions and
// acquire. What keeps a stale member from applying anything is not its
// view of the owner keys, which may lag, but the epoch: the new owner's
// Claim moved e/ACTOR, and every commit is guarded by it, so the stale
// member's next commit fails with mailbox.ErrFenced and writes nothing.
// Its actor is restarted, finds that it owns nothing (Owns is false once
// the lease is known lost), and stays passive.
//
// Messages need no routing: a send through any member is durable in the
// shared store, and the owner's store watch wakes the actor. A call
// through a member that does not run the actor waits for the reply the
// owner commits (core.Placement).
//
// # Why by hand
//
// etcd's concurrency package has elections and mutexes, one key each; a
// cluster of thousands of actors needs ownership per actor, moved a few at
// a time, under one lease per member. The lease, watch and guarded
// transactions it is built from are etcd's.
package cluster
