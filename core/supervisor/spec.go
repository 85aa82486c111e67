package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Child is one running child. The supervisor only ever talks to a child
// through these three methods, so anything (an actor, a plugin process, a
// nested *Supervisor) can be supervised.
//
// Done must exist before the child runs: a child that dies during or right
// after its own start has already closed Done by the time the supervisor
// watches it, so no crash goes unseen.
type Child interface {
	// Done is closed when the child has exited, whatever the reason.
	Done() <-chan struct{}
	// Err says why the child exited once Done is closed; nil means a normal
	// exit, which matters for Transient children.
	Err() error
	// Stop stops the child: gracefully first, then by force, and it must
	// return by ctx's deadline. It may be called on a child that has
	// already exited and must then return at once.
	Stop(ctx context.Context) error
}

// Notifier is a Child that reports its own exit. The supervisor then
// keeps no goroutine per child waiting on Done, which matters with a
// million children.
type Notifier interface {
	// OnDone arranges for f to be called once, in a goroutine of its own,
	// after Done is closed (at once if it already is).
	OnDone(f func())
}

// Strategy says which siblings are restarted along with a child that is
// restarted, as in Erlang/OTP.
type Strategy int

const (
	// OneForOne restarts only the child that exited.
	OneForOne Strategy = iota
	// OneForAll stops every other child (reverse start order) and restarts
	// them all (start order), for children that cannot live without each
	// other.
	OneForAll
	// RestForOne stops and restarts the child that exited and every child
	// after it in start order, for pipelines where later children depend on
	// earlier ones.
	RestForOne
)

// String names the strategy as OTP does, for logs and status output.
func (s Strategy) String() string {
	switch s {
	case OneForOne:
		return "one_for_one"
	case OneForAll:
		return "one_for_all"
	case RestForOne:
		return "rest_for_one"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// RestartType says when a child that exited is restarted, as in Erlang/OTP.
type RestartType int

const (
	// Permanent children are always restarted, even after a normal exit.
	Permanent RestartType = iota
	// Transient children are restarted only after an abnormal exit (Err()
	// != nil, a failed or timed-out start); a normal exit leaves them
	// stopped.
	Transient
	// Temporary children are never restarted; they are removed from the
	// supervisor once they exit or fail to start.
	Temporary
)

// String names the restart type as OTP does, for logs and status output.
func (r RestartType) String() string {
	switch r {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Temporary:
		return "temporary"
	}
	return fmt.Sprintf("RestartType(%d)", int(r))
}

// Default values applied by New to zero fields, chosen like OTP's defaults
// (intensity 3 in 5 s) and so that a hung start or stop never stalls a tree
// for long.
const (
	DefaultMaxRestarts  = 3
	DefaultPeriod       = 5 * time.Second
	DefaultBackoffMin   = 10 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
	DefaultStartTimeout = 10 * time.Second
	DefaultStopTimeout  = 5 * time.Second
	// DefaultMaxConcurrentStarts bounds the starts in flight at once.
	DefaultMaxConcurrentStarts = 256
)

// ChildSpec describes how to start one child and what to do when it exits.
type ChildSpec struct {
	// ID names the child, unique within its supervisor.
	ID string
	// Start starts the child and must honour ctx, which carries the
	// StartTimeout deadline and is cancelled when the supervisor stops or
	// the child is terminated. ctx bounds the start only: it is cancelled
	// once Start returns, so the child must not tie its lifetime to it.
	// A Child returned together with an error, or after the start was
	// abandoned, is stopped by the supervisor at once.
	Start func(ctx context.Context) (Child, error)
	// Restart says when the child is restarted after it exits.
	Restart RestartType
	// Requires names siblings that must be running before this child
	// starts (at first and on every restart). Children with no requirement
	// between them start concurrently. It orders starts only: a running
	// child is not stopped because a sibling it requires exits (use
	// RestForOne or OneForAll for that; start order puts requirements first).
	Requires []string
	// StartTimeout bounds Start; a start that takes longer is a failure.
	// Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout bounds Stop; the supervisor waits no longer even if the
	// child misbehaves. Zero means DefaultStopTimeout. A nested supervisor
	// needs enough for its own children.
	StopTimeout time.Duration
}

// Spec configures a supervisor.
type Spec struct {
	// Strategy chooses which siblings restart along with a failed child.
	Strategy Strategy
	// MaxRestarts and Period are the restart intensity: more than
	// MaxRestarts restarts within Period and the supervisor gives up, stops
	// its children and exits with ErrIntensity. Zero values mean
	// DefaultMaxRestarts and DefaultPeriod; a negative MaxRestarts allows no
	// restart at all.
	MaxRestarts int
	Period      time.Duration
	// BackoffMin and BackoffMax bound the exponential delay between two
	// restarts of one child. The delay doubles on each restart and is reset
	// once the child has run for Period without exiting. Zero values mean
	// DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// Logger receives the supervisor's log lines; nil discards them.
	// MaxConcurrentStarts bounds how many child starts are in flight at
	// once (default 256): independent children start concurrently, but
	// 100,000 of them must not all hold a goroutine and its stack at once.
	MaxConcurrentStarts int
	Logger              *slog.Logger
	// OnEvent, if set, is called from the supervisor's loop for every
	// lifecycle event, for metrics and tests. It must not block and must
	// not call the supervisor's methods other than Children, or the loop
	// stalls.
	OnEvent func(Event)
}

// Errors the supervisor returns or wraps; match them with errors.Is.
var (
	// ErrInvalidSpec: a Spec or ChildSpec field is out of range or missing.
	ErrInvalidSpec = errors.New("invalid supervisor spec")
	// ErrDuplicateChild: two children share an ID.
	ErrDuplicateChild = errors.New("duplicate child id")
	// ErrUnknownChild: an ID (in Requires or a method call) names no child.
	ErrUnknownChild = errors.New("unknown child")
	// ErrCycle: requirements form a cycle; the error names it.
	ErrCycle = errors.New("requirement cycle")
	// ErrRequired: a child cannot be deleted while siblings require it.
	ErrRequired = errors.New("child is required by others")
	// ErrRunning: the operation needs a stopped child (as OTP's
	// restart_child and delete_child do).
	ErrRunning = errors.New("child is not stopped")
	// ErrIntensity: more than MaxRestarts restarts happened within Period,
	// so the supervisor gave up. The error wraps the last child error.
	ErrIntensity = errors.New("restart intensity exceeded")
	// ErrStartTimeout: a child's Start did not return within StartTimeout,
	// or failed at that deadline (the error then wraps its own too).
	ErrStartTimeout = errors.New("child start timed out")
	// ErrStopTimeout: a child did not stop within its StopTimeout.
	ErrStopTimeout = errors.New("child stop timed out")
	// ErrNotStarted: the supervisor has not been started yet.
	ErrNotStarted = errors.New("supervisor not started")
	// ErrStopped: the supervisor is stopping or has exited.
	ErrStopped = errors.New("supervisor stopped")
	// ErrStartPanic: a child's Start panicked; the panic value is in the message.
	ErrStartPanic = errors.New("child start panicked")
)

// normalize fills defaults and checks ranges, so the loop never has to.
func (sp Spec) normalize() (Spec, error) {
	if sp.Strategy < OneForOne || sp.Strategy > RestForOne {
		return sp, fmt.Errorf("supervisor: strategy %d: %w", int(sp.Strategy), ErrInvalidSpec)
	}
	switch {
	case sp.MaxRestarts == 0:
		sp.MaxRestarts = DefaultMaxRestarts
	case sp.MaxRestarts < 0:
		sp.MaxRestarts = 0
	}
	if sp.Period == 0 {
		sp.Period = DefaultPeriod
	}
	if sp.MaxConcurrentStarts <= 0 {
		sp.MaxConcurrentStarts = DefaultMaxConcurrentStarts
	}
	if sp.BackoffMin == 0 {
		sp.BackoffMin = DefaultBackoffMin
	}
	if sp.BackoffMax == 0 {
		sp.BackoffMax = DefaultBackoffMax
	}
	if sp.Period < 0 || sp.BackoffMin < 0 || sp.BackoffMax < sp.BackoffMin {
		return sp, fmt.Errorf("supervisor: period %s, backoff %s..%s: %w",
			sp.Period, sp.BackoffMin, sp.BackoffMax, ErrInvalidSpec)
	}
	if sp.Logger == nil {
		sp.Logger = slog.New(slog.DiscardHandler)
	}
	return sp, nil
}

// normalize fills a child spec's defaults and checks its own fields (not its
// relations to siblings, see validateSet).
func (cs ChildSpec) normalize() (ChildSpec, error) {
	if cs.ID == "" {
		return cs, fmt.Errorf("supervisor: child with empty id: %w", ErrInvalidSpec)
	}
	if cs.Start == nil {
		return cs, fmt.Errorf("supervisor: child %q: nil Start: %w", cs.ID, ErrInvalidSpec)
	}
	if cs.Restart < Permanent || cs.Restart > Temporary {
		return cs, fmt.Errorf("supervisor: child %q: restart type %d: %w", cs.ID, int(cs.Restart), ErrInvalidSpec)
	}
	if cs.StartTimeout < 0 || cs.StopTimeout < 0 {
		return cs, fmt.Errorf("supervisor: child %q: negative timeout: %w", cs.ID, ErrInvalidSpec)
	}
	if cs.StartTimeout == 0 {
		cs.StartTimeout = DefaultStartTimeout
	}
	if cs.StopTimeout == 0 {
		cs.StopTimeout = DefaultStopTimeout
	}
	cs.Requires = append([]string(nil), cs.Requires...)
	return cs, nil
}

// orderSpecs validates a whole set of child specs (duplicates, unknown or
// temporary requirements, cycles) and returns them in start order: spec
// order, except that every child comes after the children it requires. It
// reports the first problem in spec order, so the error is deterministic.
func orderSpecs(specs []ChildSpec) ([]ChildSpec, error) {
	byID := make(map[string]int, len(specs))
	for i, cs := range specs {
		if _, dup := byID[cs.ID]; dup {
			return nil, fmt.Errorf("supervisor: child %q: %w", cs.ID, ErrDuplicateChild)
		}
		byID[cs.ID] = i
	}
	for _, cs := range specs {
		for _, r := range cs.Requires {
			j, ok := byID[r]
			if !ok {
				return nil, fmt.Errorf("supervisor: child %q requires %q: %w", cs.ID, r, ErrUnknownChild)
			}
			if specs[j].Restart == Temporary {
				return nil, fmt.Errorf("supervisor: child %q requires temporary child %q, which is never restarted: %w",
					cs.ID, r, ErrInvalidSpec)
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(specs))
	out := make([]ChildSpec, 0, len(specs))
	var path []string
	var visit func(i int) error
	visit = func(i int) error {
		switch color[i] {
		case black:
			return nil
		case grey:
			// path holds the grey chain; the cycle starts where i entered it.
			id := specs[i].ID
			start := 0
			for k, p := range path {
				if p == id {
					start = k
					break
				}
			}
			cycle := append(append([]string(nil), path[start:]...), id)
			return fmt.Errorf("supervisor: %w: %s", ErrCycle, strings.Join(cycle, " -> "))
		}
		color[i] = grey
		path = append(path, specs[i].ID)
		for _, r := range specs[i].Requires {
			if err := visit(byID[r]); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		color[i] = black
		out = append(out, specs[i])
		return nil
	}
	for i := range specs {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ChildState is where a child is in its life cycle (see the package doc for
// the diagram).
type ChildState int

const (
	// Waiting: due to start once every child it requires is running.
	Waiting ChildState = iota
	// Starting: its Start is in flight (bounded by StartTimeout).
	Starting
	// Running: started and being watched.
	Running
	// Stopping: the supervisor is stopping it (bounded by StopTimeout).
	Stopping
	// Backoff: it exited or failed to start and waits out its restart delay.
	Backoff
	// Stopped: not running and not going to be restarted: terminated by the
	// operator, a normal exit of a transient child, or its supervisor exited.
	Stopped
	// Failed: its failure made the supervisor give up (intensity exceeded).
	Failed
)

// String names the state for status output.
func (s ChildState) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Starting:
		return "starting"
	case Running:
		return "running"
	case Stopping:
		return "stopping"
	case Backoff:
		return "backoff"
	case Stopped:
		return "stopped"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("ChildState(%d)", int(s))
}

// ChildStatus is a snapshot of one child, for status commands and tests.
type ChildStatus struct {
	// ID, Restart and Requires repeat the child's spec.
	ID       string
	Restart  RestartType
	Requires []string
	// State is where the child is in its life cycle.
	State ChildState
	// Restarts counts restarts decided for this child since it was added.
	Restarts int
	// LastError is the last abnormal exit or start failure, if any.
	LastError error
	// Since is when the child entered State.
	Since time.Time
	// Delay is the pending restart delay while in Backoff.
	Delay time.Duration
}

// EventKind names a lifecycle event reported through Spec.OnEvent.
type EventKind int

const (
	// EventStarting: a Start call is about to run.
	EventStarting EventKind = iota
	// EventStarted: Start returned a Child, which is now watched.
	EventStarted
	// EventStartFailed: Start failed, panicked or timed out (Err says which).
	EventStartFailed
	// EventExited: a running child exited (Err is nil for a normal exit).
	EventExited
	// EventRestarting: a restart is scheduled after Delay.
	EventRestarting
	// EventStopped: the supervisor stopped the child (Err if the stop
	// failed or timed out).
	EventStopped
	// EventRemoved: the child left the supervisor (temporary exit, Delete).
	EventRemoved
	// EventGaveUp: restart intensity was exceeded because of this child.
	EventGaveUp
)

// String names the event kind for logs.
func (k EventKind) String() string {
	switch k {
	case EventStarting:
		return "starting"
	case EventStarted:
		return "started"
	case EventStartFailed:
		return "start failed"
	case EventExited:
		return "exited"
	case EventRestarting:
		return "restarting"
	case EventStopped:
		return "stopped"
	case EventRemoved:
		return "removed"
	case EventGaveUp:
		return "gave up"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one lifecycle event of one child, for logs and metrics.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Child is the ID of the child it happened to.
	Child string
	// Err is the exit, start or stop error, if any.
	Err error
	// Delay is the restart delay, for EventRestarting.
	Delay time.Duration
	// Restarts is the child's restart count after the event.
	Restarts int
	// Time is when the supervisor's loop handled the event.
	Time time.Time
}
