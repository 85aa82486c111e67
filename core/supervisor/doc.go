// Package supervisor is a generic, Erlang/OTP-style supervisor: it starts
// children, watches them, and restarts them by OTP's rules, so that a
// failing part of the graft core is restarted alone and a part that keeps
// failing takes its supervisor down with it instead of spinning forever
// (guarantee G7 in the README's table of guarantees). It imports no graft package: anything
// that implements Child can be supervised, including a *Supervisor, so
// supervisors nest into trees.
//
// # Semantics (Erlang/OTP, with the differences noted)
//
// Strategies, applied when a child is to be restarted:
//   - OneForOne: only that child is restarted.
//   - OneForAll: every other child is stopped (reverse start order), then all
//     are restarted (start order).
//   - RestForOne: the child and every child after it in start order are
//     stopped (reverse order) and restarted.
//
// Terminated children (see Terminate) and stopped ones are never touched by
// a strategy. Temporary siblings stopped by a strategy are removed, as in OTP.
//
// Restart types: Permanent children are always restarted; Transient ones
// only after an abnormal exit (Err() != nil) or a failed start; Temporary
// ones never, and they are removed once they exit. A restart of a Temporary
// child never triggers its siblings' restart.
//
// Intensity: more than MaxRestarts restarts within Period (a group restart
// counts once, as in OTP) and the supervisor gives up: it stops all its
// children in reverse start order and exits with an error matching
// ErrIntensity that names the child and wraps its last error. A parent
// supervisor sees that as an abnormal exit of a child.
//
// Backoff (not in OTP): a restart waits BackoffMin, then twice the previous
// delay up to BackoffMax; a child that ran for Period without exiting starts
// over at BackoffMin. In OneForAll and RestForOne the whole group waits the
// failed child's delay. The delay is a timer: the loop never sleeps.
//
// Start order (differs from OTP): children start in spec order, except that
// a child never starts before the children in its Requires are running, and
// children with no requirement between them start concurrently. Start order
// (used for "reverse start order" and RestForOne) is spec order moved only
// as much as requirements demand, so requirements always come first.
// Requires orders starts; it does not stop a child when a requirement exits.
// New refuses duplicate ids, unknown requirements and requirement cycles
// (naming the cycle, "a -> b -> a") before anything starts.
//
// Starts are asynchronous (OTP starts children synchronously): each Start
// runs in its own goroutine and reports back to the loop, bounded by
// StartTimeout through a timer the loop owns, so a Start that ignores its
// ctx is still failed on time. A start that fails, panics or times out is a
// failure like a crash: restart type, intensity and backoff apply. Its
// cleanup is armed before it begins: a Child returned after the timeout,
// after Terminate or after the supervisor stopped is stopped at once, and
// Stop cancels every start in flight and waits for the start goroutines
// (for a bounded grace when a Start ignores its ctx; such a goroutine still
// stops its own late Child when it returns). Done exists before a child
// runs, so an exit during or right after Start is seen.
//
// Stops are bounded: a child gets Stop with a ctx that expires after its
// StopTimeout (graceful, then force, is the child's job); the supervisor
// does not wait longer even if the child ignores ctx. Stop(ctx) also cuts
// every child's time to ctx's deadline, so a whole tree stops by then.
//
// # Life of a child
//
//	New/Add/Enroll/Restart
//	      |
//	      v      requires running       Start returned
//	  Waiting --------------------> Starting ------------> Running
//	      ^                            |                      |
//	      |                            | failed, panicked,    | exited
//	      |                            | timed out            |
//	      |  delay elapsed             v                      v
//	      +---------------- Backoff <---- yes -- restart? ----+
//	                                                 | no
//	                                                 v
//	        Stopped (transient, normal exit), removed (temporary),
//	        or Failed (intensity exceeded: the supervisor gives up)
//
//	any live state --Terminate, Stop, a sibling's restart--> Stopping
//	Stopping --> Stopped (Terminate, Stop) or Backoff (strategy restart)
//	Stopped --Restart--> Waiting        Stopped --Delete--> removed
//
// # Concurrency
//
// One loop goroutine owns all state and never blocks on a child. Methods
// that need the loop (Add, Enroll, Terminate, Restart, Delete, Stop) take a
// ctx and return by its deadline; Add waits for the first start, Enroll
// only for the child to be supervised. Children reads a snapshot and never
// waits for the loop's work. OnEvent runs on the loop and must not block.
//
// A running child's exit reaches the loop from a goroutine that waits on
// its Done, or, for a child that is a Notifier, from its OnDone callback:
// a core with a million actors then keeps no goroutine per actor.
package supervisor
