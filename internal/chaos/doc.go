// Package chaos is graft's chaos harness: it runs the real `graft` binary
// as a child process with several actors under a steady load of sends,
// calls and durable timers, injects events at times drawn from a seed, and
// at the end checks the whole history against the guarantees in the
// README's table (G1-G9).
//
// The events: kill -9 of the core (some right after timers were set, so
// they are pending across it); kill -9 and SIGSTOP of module processes;
// upgrades and rollbacks between two plugin versions; poison messages;
// spawns of actors (from a handler's ctx.Spawn or through the control
// API); destroys of spawned actors with timers pending. Throughout, the
// actors of behaviour "ctm" (testdata/ctm) set timers from their handlers
// (SendAfter and SendAt, 50 ms to 3 s, to themselves, each other and
// virtual actors ctm/KEY, a few re-arming themselves), a quarter of them
// cancelled, some racing the fire.
//
// The checks, from the committed states in the store after the core
// stopped (the test behaviours record every payload and every timer fire
// they apply, with its TimerID and arrival time):
//
//   - every acknowledged send applied exactly once, in per-sender order
//     (G1, G2);
//   - poison messages (crashing, or growing the state past its limit) in
//     the dead-letter area and nowhere else (G7, G5);
//   - every actor on a module version whose schema matches its committed
//     state (G4);
//   - no plugin process, socket file or file descriptor left behind (G6);
//   - the calls on a register actor linearizable (porcupine), including
//     calls whose outcome stayed unknown;
//   - every committed timer fired exactly once, at its target, carrying
//     its timer id, never before it can have been due (1 ms of clock
//     slack), and SendAt timers set before either was due in due order;
//     a timer in a batch whose answer was lost may be missing, but fires
//     at most once; one cancelled (or whose owner was destroyed) before it
//     was due never fires; none is left pending; each link of a re-arming
//     chain that fired was followed by the next;
//   - every acknowledged spawn in the registry once, having applied its
//     init message once, unless destroyed; a destroyed actor gone; no
//     actor in the registry that nobody made (G2: timers and spawns are
//     part of a handler's exactly-once effect).
//
// It exists because each guarantee has its own unit test, but only a long
// randomised run finds the interleavings nobody thought to write down. A
// run is replayable in its fault schedule with the same --seed (timings of
// the machine still vary).
//
// cmd/graft-chaos is the command; scripts/chaos.sh builds and runs it.
package chaos
