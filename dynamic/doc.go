// Package dynamic is graft's host for behaviour plugins: it starts a plugin
// binary as a separate process (hashicorp/go-plugin over gRPC), checks what
// it is, drives it, watches it and stops it. Plugins are written with the
// SDK in github.com/graft-host/graft/dynamic/sdk (a module of its own); the
// protocol is its proto/graftv1 package.
//
// A Module is one generation of one plugin: one process, one go-plugin
// client, one Handle stream. It never restarts itself; the core's supervisor
// starts a new Module (a restart always works because nothing is reused).
// State lives in the core: every call carries the state and returns the new
// one, so a module can die at any moment and lose nothing.
//
// Message flow between the core and a plugin:
//
//	core (actor goroutines)      dynamic.Module (host)            plugin process (sdk)
//	      |                              |                                 |
//	      |-- Start(ctx, cfg) ---------->| fork+exec (own pgid, Pdeathsig, |
//	      |                              |   liveness pipe on fd 3)  ----->|
//	      |                              |<-- handshake line on stdout ----|
//	      |                              |--- Info(host broker id) ------->|
//	      |<-- *Module (name checked) ---|<-- name, code ver, schemas -----|
//	      |-- Init(actor) -------------->|--- Init ----------------------->|
//	      |<-- State{schema, bytes} -----|<-- encoded fresh state ---------|
//	      |-- Handle(batch A) ---------->|=== HandleRequest{id 1} ========>|  one bidi
//	      |-- Handle(batch B) ---------->|=== HandleRequest{id 2} ========>|  stream,
//	      |                              |<== HandleResponse{id 2} ========|  pipelined,
//	      |<-- results B, state ---------|                                 |  matched by
//	      |                              |       (handler calls ctx.Call)  |  batch id
//	      |<-- Caller.Call(req) ---------|<-- Host.Call via GRPCBroker ----|
//	      |--- reply ------------------->|--- CallResponse --------------->|
//	      |                              |<== HandleResponse{id 1} ========|
//	      |<-- results A, state ---------|                                 |
//	      |   (commit state+effects)     |                                 |
//	      |-- Migrate(state, to) ------->|--- Migrate -------------------->|
//	      |<-- State{to, bytes} ---------|<--------------------------------|
//	      |-- Stop(ctx) ---------------->|--- go-plugin Shutdown --------->| exits
//	      |                              |   (deadline: SIGKILL -pgid)     |
//	      |                              | waitid(WNOWAIT), kill group,    |
//	      |                              |   reap, remove socket dir       |
//	      |<-- Exited() closed, Err() ---|                                 |
//
// Failure handling, all bounded by a deadline: a start that fails or times
// out is a *StartError (ErrBadBinary, ErrStartTimeout) naming the binary; a
// batch unanswered within HandleTimeout is a *HangError and the module is
// killed; an unexpected exit is a *CrashError with the exit status; Stop
// always returns by its deadline. If the core dies, however, the plugin
// sees EOF on its liveness pipe and exits at once (see internal/proc).
package dynamic
