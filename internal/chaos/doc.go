// Package chaos is graft's chaos harness: it runs the real `graft` binary
// as a child process with several actors under a steady load of sends and
// calls, injects faults at times drawn from a seed (kill -9 of the core,
// kill -9 and SIGSTOP of module processes, upgrades and rollbacks between
// two plugin versions, poison messages), and at the end checks the whole
// history against the guarantees in the README's table (G1-G9):
//
//   - every acknowledged send applied exactly once, in per-sender order
//     (G1, G2), read from the committed states in the store after the core
//     stopped (the test behaviours record every payload they apply, across
//     migrations);
//   - poison messages (crashing, or growing the state past its limit) in
//     the dead-letter area and nowhere else (G7, G5);
//   - every actor on a module version whose schema matches its committed
//     state (G4);
//   - no plugin process, socket file or file descriptor left behind (G6);
//   - the calls on a register actor linearizable (porcupine), including
//     calls whose outcome stayed unknown.
//
// It exists because each guarantee has its own unit test, but only a long
// randomised run finds the interleavings nobody thought to write down. A
// run is replayable in its fault schedule with the same --seed (timings of
// the machine still vary).
//
// cmd/graft-chaos is the command; scripts/chaos.sh builds and runs it.
package chaos
