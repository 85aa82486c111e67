// Package dynamic is graft's host for behaviour plugins: it starts a plugin
// binary as a separate process (hashicorp/go-plugin over gRPC), checks what
// it is, drives it, watches it and stops it. Plugins are written with the
// SDK in github.com/graft-host/graft/dynamic/sdk (a module of its own); the
// protocol is its proto/graftv1 package.
//
// An Instance is one running generation of one module (a behaviour at one
// code version, in the design's words): one process, one go-plugin client,
// one Handle stream. It never restarts itself; the core's supervisor starts
// a new Instance (a restart always works because nothing is reused). The
// names keep four things apart: sdk.Module is what a plugin author
// declares, dynamic.Instance is one process running it, core.LoadedModule
// is a version the upgrade has started beside the old one, and the binary
// cache (upgrade) is where the plugin binaries that run are kept by sha256.
// State lives in the core: every call carries the state and returns the new
// one, so a module can die at any moment and lose nothing.
//
// Message flow between the core and a plugin:
//
//	core (actor goroutines)      dynamic.Instance (host)          plugin process (sdk)
//	      |                              |                                 |
//	      |-- Start(ctx, cfg) ---------->| fork+exec in its cgroup (own    |
//	      |                              |   pgid, Pdeathsig, clean env,   |
//	      |                              |   liveness pipe on fd 3)  ----->|
//	      |                              |<-- handshake line on stdout ----|
//	      |                              |  (Host service listening first) |
//	      |                              |--- Info(host broker id) ------->|
//	      |                              |<== dial Host service, once =====|
//	      |<-- *Instance (name checked) -|<-- name, code ver, schemas -----|
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
//	      |                              | waitid(WNOWAIT), kill cgroup    |
//	      |                              |   and group, reap, remove the   |
//	      |                              |   cgroup and socket dir         |
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
// sees EOF on its liveness pipe (and SIGTERM, its Pdeathsig) and ends its
// whole tree at once (see internal/proc).
//
// # What a plugin gets, and what contains it
//
// A plugin starts with a clean environment: PATH, HOME, LANG and TZ from
// the host, what Config.Env lists ("KEY=value", or "KEY" to pass the
// host's own value on), go-plugin's handshake variables and graft's own
// (GRAFT_LIVENESS_FD, GRAFT_CGROUP, GRAFT_MODULE_ID), nothing else: not
// the host's credentials, not GRAFT_SOCKET. It inherits no descriptor but
// stdin (/dev/null), its stdout and stderr pipes and the liveness pipe on
// fd 3: every other descriptor of the host is made close-on-exec before
// the fork, including those the host inherited from its own parent.
//
// A module's whole process tree is contained, so that Stop, a crash, a
// hang kill or the host's death ends all of it, whatever setsid or double
// fork a descendant did and whether it ignores SIGTERM:
//   - where the machine offers a cgroup (v2, or v1 with freezer, pids,
//     memory, cpu), each module runs in its own, graft-PID-START-RANDOM
//     under the host's cgroup, from its first instruction; it is killed
//     with cgroup.kill (v2) or frozen and killed pid by pid (v1), and
//     removed once empty. Config.Resources set its memory, pids and CPU
//     weight limits (systemd's MemoryMax, TasksMax, CPUWeight); a module
//     killed at its memory limit is a *CrashError that says "killed: over
//     its memory limit of 64 MiB" and matches ErrMemoryLimit. Groups left
//     by a host killed with kill -9 are removed by the next host's start.
//   - elsewhere, the process group is killed, and a host that is a child
//     subreaper (PrepareHost makes the graft process one) gets back the orphans of
//     its plugins, finds them by their module id and kills and reaps
//     them by pid (never wait(-1)).
//   - when the host dies, the plugin (SDK) kills its cgroup and its
//     process group, itself included, before anything else.
//
// A plugin's output is read in 64 KiB chunks and logged at Config's
// OutputRate (lines per second, with OutputBurst); while over it, whole
// chunks are dropped at the cost of counting their newlines, and what was
// dropped is reported once per 10 s: "dropped N lines (M bytes) of plugin
// output in the last 10s". The SDK writes os.Stdout and os.Stderr to those
// pipes directly rather than through go-plugin's gRPC stdio stream.
package dynamic
