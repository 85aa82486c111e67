package control

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// Runtime is what the control API needs from a running core; *core.Core
// implements it. It is an interface so the server can be built before the
// core exists (the socket is claimed first) and so it names exactly what
// the API touches.
type Runtime interface {
	Status(ctx context.Context) ([]core.ActorStatus, error)
	Send(ctx context.Context, actor string, payload []byte, opts core.SendOptions) (mailbox.Receipt, error)
	Call(ctx context.Context, actor string, payload []byte, opts core.SendOptions) ([]byte, error)
	StopActor(ctx context.Context, name string) error
	StartActor(ctx context.Context, name string) error
	// DestroyActor removes an actor for good (registry entry, mailbox,
	// state, timers, idempotency window); StopActor keeps its data.
	DestroyActor(ctx context.Context, name string) error
	// Spawn creates an actor at run time (created false: it existed with
	// that behaviour, nothing changed); an actor of that name with another
	// behaviour fails with a *mailbox.SpawnConflictError.
	Spawn(ctx context.Context, name, behaviour string, init []byte) (created bool, err error)
	// SendAfterID sets a durable timer that delivers payload to actor at
	// due, and returns its id; with a caller's id (not empty) a retry
	// while it is pending sets nothing new. Timers lists an actor's
	// pending timers.
	SendAfterID(ctx context.Context, actor, id string, payload []byte, due time.Time) (timerID string, err error)
	Timers(ctx context.Context, actor string) ([]mailbox.Timer, error)
	// ReplaceState and ResetState repair an actor's state (see the
	// endpoints under /v1/actors/{actor}/state); MaxStateSize bounds it.
	ReplaceState(ctx context.Context, actor string, data []byte, schema *uint32) (core.Repair, error)
	ResetState(ctx context.Context, actor string) (core.Repair, error)
	MaxStateSize() int
	// RequeueDeadLetter retries one dead letter: the one write the
	// dead-letter endpoints make, through the core like every write.
	RequeueDeadLetter(ctx context.Context, actor string, seq uint64) (mailbox.Receipt, error)
	// Store is the core's store, read-only by type: mailbox.Reader has
	// no method that writes, so nothing in this package can change the
	// store except through the core's methods above.
	Store() mailbox.Reader
}

// Upgrader performs upgrades and rollbacks; host passes the upgrade
// package's implementation in, so this package does not depend on it.
type Upgrader interface {
	// Upgrade moves the actors of behaviour to the module built from
	// req.Binary ("" means the configured binary, rebuilt in place), all
	// of them or a canary first (req.Canary). A request that cannot be
	// carried out as written wraps ErrBadRequest.
	Upgrade(ctx context.Context, behaviour string, req UpgradeRequest) (mailbox.UpgradeRecord, error)
	// Rollback moves every actor of behaviour back to its previous version.
	Rollback(ctx context.Context, behaviour string) (mailbox.UpgradeRecord, error)
	// DryRun checks binary against every actor of behaviour and moves
	// none.
	DryRun(ctx context.Context, behaviour, binary string) (DryRunReport, error)
	// Decide ends behaviour's canary bake now: promote, or roll back.
	Decide(behaviour string, promote bool) error
	// InProgress lists the upgrades, rollbacks and dry runs running.
	InProgress() []UpgradeProgress
}

// ErrBadRequest marks an Upgrader's refusal of a request as written (a
// canary that cannot be read): the API answers it 400 bad_request.
var ErrBadRequest = errors.New("bad request")

// fromCore is s as the API shows it.
func fromCore(s core.ActorStatus) ActorStatus {
	return ActorStatus{
		Name: s.Name, Behaviour: s.Behaviour, Module: s.Module, Schema: s.Schema, Status: s.Status,
		Depth: s.Depth, InFlight: s.InFlight, Processed: s.Processed, Failed: s.Failed,
		Restarts: s.Restarts, ModuleRestarts: s.ModuleRestarts, DeadLetters: s.DeadLetters,
		LastExit: s.LastExit, PID: s.Pid, UptimeSeconds: s.Uptime.Seconds(), LastError: s.LastError,
		Origin: s.Origin, Owner: s.Owner,
	}
}

// replyText is reply as text when it is valid UTF-8, else "".
func replyText(reply []byte) string {
	if utf8.Valid(reply) {
		return string(reply)
	}
	return ""
}
