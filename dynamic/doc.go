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
//	      |                              |  (Host service listening first) |
//	      |                              |--- Info(host broker id) ------->|
//	      |                              |<== dial Host service, once =====|
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
//	      |   (commit state+effects;     |    each result: ok, a failure   |
//	      |    a refusal commits too)    |    (no effect) or a refusal     |
//	      |-- Migrate(state, to) ------->|--- Migrate -------------------->|
//	      |<-- State{to, bytes} ---------|<--------------------------------|
//	      |-- Stop(ctx) ---------------->|--- go-plugin Shutdown --------->| exits
//	      |                              |   (deadline: SIGKILL -pgid)     |
//	      |                              | waitid(WNOWAIT), kill group,    |
//	      |                              |   reap, remove socket dir       |
//	      |<-- Exited() closed, Err() ---|                                 |
//
// Windows on the path, and what crosses each (a bug that shows only after
// a timeout is one every user hits and no quick test does):
//
//   - go-plugin's broker keeps the connection info of a brokered service
//     for 5 s. The host opens its call service before Info and the plugin
//     dials it inside Info, once, for the module's life; the listener lives
//     as long as the module. Crossed by TestCallAfterBrokerWindow (7 s),
//     TestConcurrentCallsAcrossIdleGaps (bursts 6 s apart), core's
//     TestCallsWorkLongAfterModuleRestart and upgrade's
//     TestCallsWorkLongAfterUpgradeAndRollback.
//   - gRPC's idle timeout (30 min by default) is disabled on the plugin's
//     call connection; the core's connection always carries the open Handle
//     stream, so it never idles. No keepalive pings are configured on
//     either side (so no "too many pings" GOAWAY): liveness comes from the
//     liveness pipe and waitid, not from the network. TestCallThirtySeconds-
//     AfterStart runs in the suite; scripts/long-windows.sh runs 10 min (or
//     31 min) of idleness before a call.
//   - StartTimeout bounds the start and handshake only; HandleTimeout bounds
//     one batch (TestHangIsReportedAndModuleKilled); CallTimeout (half of it
//     by default) bounds one call from a handler, which then gets
//     ErrCallTimeout in time to answer (core's
//     TestHandlerCallTimesOutWithItsKind); StopTimeout bounds Stop.
//
// Failure handling, all bounded by a deadline: a start that fails or times
// out is a *StartError (ErrBadBinary, ErrStartTimeout) naming the binary; a
// batch unanswered within HandleTimeout is a *HangError and the module is
// killed; an unexpected exit is a *CrashError with the exit status; Stop
// always returns by its deadline. If the core dies, however, the plugin
// sees EOF on its liveness pipe and exits at once (see internal/proc).
package dynamic
