package upgrade

import (
	"context"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// Host is what the upgrade machinery needs of a running core, and nothing
// more: core.Core.Upgrades returns its implementation (*core.UpgradeHooks).
// Its methods are the core's upgrade hooks, which keep the core's
// invariants only when used in the protocol's order (see the package doc's
// state machine, and core.UpgradeHooks): LoadModule the target, read each
// actor's State, Pause a group, CommitStates with the pauses' epochs,
// Resume each paused actor exactly once, AppendHistory, then UnloadModule
// the version no actor uses.
type Host interface {
	// LoadModule starts behaviour's module from binary beside the running
	// one, moving no actor.
	LoadModule(ctx context.Context, behaviour, binary, sha256 string) (*core.LoadedModule, error)
	// Pins is the core's memo of binaries hashed against their pins, for
	// the cache to vouch for the entries it writes.
	Pins() *dynamic.Pins
	// UnloadModule stops that module once no running actor uses it and
	// reports whether it did.
	UnloadModule(ctx context.Context, behaviour, binary string) (bool, error)
	// ActorsOf lists the configured actors of behaviour, in config order.
	ActorsOf(behaviour string) []string
	// State returns an actor's committed state.
	State(ctx context.Context, actor string) (mailbox.State, error)
	// PauseAhead holds an actor between two commits (resume it exactly
	// once), telling ahead the state its batch in flight commits as soon
	// as that is known; ahead must return at once (premigrate.go).
	PauseAhead(ctx context.Context, name string, ahead func(mailbox.State)) (*core.Paused, error)
	// CommitStates commits paused actors' new states in one transaction,
	// each under its pause's epoch.
	CommitStates(ctx context.Context, commits ...mailbox.Commit) error
	// AppendHistory stores an upgrade record and returns its id.
	AppendHistory(ctx context.Context, rec mailbox.UpgradeRecord) (uint64, error)
	// DeadLetters lists an actor's dead letters, and RequeueDeadLetter
	// moves one back into its mailbox: a canary rolled back requeues the
	// messages it dead-lettered, to run again on the old version.
	DeadLetters(ctx context.Context, actor string) ([]mailbox.DeadLetter, error)
	RequeueDeadLetter(ctx context.Context, actor string, seq uint64) (mailbox.Receipt, error)
	// HoldDeadLetters keeps the messages that fail for good on actors in
	// their mailboxes, retried, while hold: a baking canary's, so that a
	// rollback has the old version handle them in order.
	HoldDeadLetters(actors []string, hold bool)
	// Handled lists an actor's batches kept for dry runs (verify_window),
	// and StartReplay starts a module process of its own to replay them
	// on, whose handlers' calls fail and are counted.
	Handled(ctx context.Context, actor string) ([]mailbox.Handled, error)
	StartReplay(ctx context.Context, behaviour, binary, sha256 string) (*core.Replay, error)
}

var _ Host = (*core.UpgradeHooks)(nil)
