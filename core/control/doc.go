// Package control serves the graft core's control API: JSON over HTTP on
// a unix socket. The protocol, its endpoints and the typed client are in
// package core/control/api, which clients import (it links nothing of the
// core); this package is the server side: the socket, the handlers, and
// the mapping of the core's errors to the API's codes. It stays responsive
// while actors start, hang or upgrade (guarantee G5): no handler waits on
// an actor, except send and call, which wait only on their own message,
// and the state repairs, which wait for the actor's batch in flight, each
// within its own deadline.
//
// The server reads the store through Runtime.Store, a mailbox.Reader: it
// has no write method, so the server cannot change the store behind the
// core's back; its writes (send and scheduled send, spawn, retry of a
// dead letter, state repairs, stop, start and destroy) are the core's
// methods, which keep the core's invariants.
//
// # Actors made at run time, and timers
//
// Spawn is Runtime.Spawn: a name that exists with the same behaviour is
// answered created false, one with another behaviour 409 spawn_conflict,
// and the core's refusals of the request itself (an unknown behaviour, a
// name in another virtual behaviour's namespace, an invalid name) 400
// bad_request. Destroy is Runtime.DestroyActor, which removes the actor
// for good; stop keeps its data. A send with after_seconds or at is
// Runtime.SendAfterID, answered with the timer's id (with the request's
// id, a retry answers the same timer and sets no other); the timers endpoint
// lists Runtime.Timers. Status shows each actor's origin (config, spawn or virtual).
//
// # Socket
//
// Listen creates the socket owner-only (0600) in a folder it creates 0700,
// and holds an advisory lock (SOCKET.lock) for the life of the core: a
// socket left by a crashed core is detected (its lock is free) and replaced,
// and a second core on the same socket is refused with "another graft core
// is running on SOCKET".
//
// # Repairing a state
//
// The state endpoints are for an operator whose actor's state is unusable
// (its handler fails on it). GET shows the committed state: schema, module
// version, size and bytes (base64 "data"; "text" too when UTF-8;
// "encoding" says json, text, binary or none). PUT replaces it and reset
// clears it so that the next message runs Init, as for a new actor: a
// running actor is paused between two commits (its batch in flight commits
// first, messages keep arriving durably), the new state is committed with
// its schema ("schema" in the request, default the schema the actor's
// module reads, which must be able to read it) and the module's version,
// and the actor resumes from it; a stopped actor is claimed and starts
// from it later. A state over the core's limits.max_state_size is refused
// with too_large. Each repair appends a history record of kind "repair"
// (From and To describe the old and new state; its step names the actor).
//
// Upgrades are served by an Upgrader that the wiring in host passes in
// (this package does not import the upgrade machinery); without one the
// upgrade and rollback endpoints answer 501 "not_implemented".
//
// The wire types and Client are also reachable here under their old names
// (aliases.go), for code that already imports this package; importing it
// links the whole core.
package control
