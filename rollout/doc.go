// Package rollout carries an upgrade that one member of a graft cluster
// made to every other member, so that an upgrade started anywhere, by a
// watched rebuild or by `graft upgrade`, moves every actor of the
// behaviour wherever it runs, and a member that joins later runs the same
// bytes.
//
// # Protocol
//
// Keys under the store's prefix P (next to package cluster's):
//
//	P/rollout/bin/SHA/meta     {size, chunks}: written after every chunk
//	P/rollout/bin/SHA/c/NNNNNN the binary's bytes, in chunks of ChunkSize
//	P/rollout/u/BEHAVIOUR      the announcement: {sha, version, kind,
//	                           by, at, prev}: what the cluster runs
//
// The member where an upgrade or rollback starts announces it from its
// manager's BeforeMove hook (Announce): after the op's checks passed on
// that member, before its first actor moves:
//
//	LOAD, CHECK on member A ─▶ Announce: store the binary (once), then
//	                           put u/BEHAVIOUR guarded by the revision read
//	                           (a canary: the binary only, announced once
//	                           promoted, by the reconcile below)
//	MOVE GROUPS on A        ║  every other member follows at once
//
// Each member reconciles every Interval, per configured behaviour whose
// upgrade manager is idle:
//
//	my current = announced       ─▶ nothing to do
//	I moved since the last       ─▶ publish: the binary by sha256 (once),
//	announcement I saw (a           then the announcement, guarded by the
//	promoted canary, a restart      revision I saw: of two members that
//	after a kill before Announce)   publish at once, one wins and the
//	                                other follows it
//	the announcement moved, or   ─▶ follow: a rollback if it names my
//	I just started and am behind    previous version, else fetch the bytes,
//	                                check their sha256, and upgrade my
//	                                actors from them (no canary: the
//	                                member that published judged it)
//
// A version that fails its checks on the member where it starts is never
// announced. Every member runs its own op, with its own pause budget and
// history record, and G3 and G4 hold per actor as on one core. A member
// killed in the middle of its share loses its actors to the others,
// which were told before its first actor moved and hold the new version:
// an actor the dead member moved runs there on it, one it had not moved
// runs on it too (the new module migrates the older state up). An op that
// fails on the member that announced it is followed forward by that
// member too, once the others moved, so the cluster ends on one version.
//
// A member catches up (CatchUp: one pass, at once) before it joins the
// cluster, the first time and after it stepped down, so that the actors
// it takes over run what the cluster runs. An actor that reaches a member
// with a state a newer version wrote (a rollback caught it on a member
// that had not rolled back yet) is moved down at its start with that
// version, which the member keeps as retired (core.StateWriters).
//
// Polling rather than watching keeps it to one read per member and
// Interval: an upgrade reaches the cluster within a second, and needs no
// care for compacted watch revisions.
//
// # What is kept
//
// The binaries announced now and the ones before them (for rollbacks)
// stay in etcd; an older binary is deleted when an announcement leaves it
// two versions behind. Every minute each member also sweeps the stored
// binaries that no announcement names and that were stored over
// SweepAfter (1 h) ago: a canary's that was rolled back, a publish that
// lost its race. A 20 MB plugin costs 20 MB of etcd's quota per version
// kept.
package rollout
