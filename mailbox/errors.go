package mailbox

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, for errors.Is. Every error a Store returns wraps one of
// these (or is one of the typed errors below) with the actor, path or limit
// at fault, so the caller can branch and the operator can act.
var (
	// ErrClosed is returned by calls on a closed store.
	ErrClosed = errors.New("mailbox store is closed")
	// ErrEmptyActorName is returned when an actor name is "".
	ErrEmptyActorName = errors.New("actor name is empty: give every actor a name")
	// ErrUnknownActor is returned for an actor that was never registered.
	ErrUnknownActor = errors.New("unknown actor")
	// ErrBehaviourMismatch is returned when Register names another
	// behaviour than the actor already has.
	ErrBehaviourMismatch = errors.New("actor is registered with another behaviour")
	// ErrBeyondEnd is returned by a commit that acks past the last
	// readable sequence number.
	ErrBeyondEnd = errors.New("commit acks past the last sequence number")
	// ErrAlreadyAcked is returned by a commit that acks nothing new.
	ErrAlreadyAcked = errors.New("commit acks messages that are already acked")
	// ErrFenced is returned by a commit whose epoch is not the actor's
	// current one: another writer has claimed the actor since.
	ErrFenced = errors.New("actor was claimed by another writer")
	// ErrUnknownMessage is returned by Lookup and Requeue for a message the
	// store does not (or no longer) hold.
	ErrUnknownMessage = errors.New("unknown message")
	// ErrTooLarge is wrapped by TooLargeError.
	ErrTooLarge = errors.New("message too large")
	// ErrInUse is wrapped by InUseError.
	ErrInUse = errors.New("store is in use by another graft process")
	// ErrCorrupt is wrapped by CorruptError.
	ErrCorrupt = errors.New("store is corrupt")
	// ErrInvalidName is returned for an actor name the store cannot keep.
	ErrInvalidName = errors.New("invalid actor name")
	// ErrDiskFull is wrapped by DiskFullError.
	ErrDiskFull = errors.New("disk is full")
	// ErrIDReused is wrapped by IDReuseError.
	ErrIDReused = errors.New("message id reused with a different payload")
	// ErrStoreFailed is wrapped by FailedError.
	ErrStoreFailed = errors.New("store failed")
	// ErrSpawnConflict is wrapped by SpawnConflictError.
	ErrSpawnConflict = errors.New("actor exists with another behaviour")
	// ErrNotOwner is returned by Claim on a store shared by a cluster of
	// cores when this core does not hold the actor's ownership: claiming
	// it would fence the core that does.
	ErrNotOwner = errors.New("actor is owned by another core of the cluster")
)

// SpawnConflictError refuses a spawn of a name that exists with another
// behaviour. A spawn of an existing actor with the same behaviour is a
// no-op, so that a redelivered batch or a retried request spawns once;
// another behaviour is almost always two parts of a system using one name
// for different things, and silently keeping either would hide it. In a
// Commit it fails the whole commit.
type SpawnConflictError struct {
	// Name is the actor's name.
	Name string
	// Existing is the behaviour it has; Requested the one asked for.
	Existing, Requested string
}

func (e *SpawnConflictError) Error() string {
	return fmt.Sprintf("spawn actor %q with behaviour %q: it exists with behaviour %q: spawn another name, or destroy the actor first", e.Name, e.Requested, e.Existing)
}

// Unwrap makes errors.Is(err, ErrSpawnConflict) hold.
func (e *SpawnConflictError) Unwrap() error { return ErrSpawnConflict }

// TooLargeError refuses a message over the size limit and states the limit.
type TooLargeError struct {
	Actor string
	Size  int
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message to actor %q is %d bytes, over the limit of %d bytes: send smaller messages or raise the message size limit", e.Actor, e.Size, e.Limit)
}

// Unwrap makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// InUseError reports that another process holds the store's lock.
type InUseError struct {
	Path string
	PID  int
}

func (e *InUseError) Error() string {
	who := "another graft process"
	if e.PID > 0 {
		who = fmt.Sprintf("another graft process (pid %d)", e.PID)
	}
	return fmt.Sprintf("store %s is in use by %s: stop it, or give this core another store path", e.Path, who)
}

// Unwrap makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Unwrap() error { return ErrInUse }

// CorruptError reports a store (or one record in it) that cannot be read.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store %s is corrupt or not a graft store: %v (restore it from a backup or move it aside; graft did not modify it)", e.Path, e.Err)
}

// Unwrap exposes both ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// DiskFullError refuses a write because the file system holding the store
// is (nearly) full. Nothing of the refused write was stored, so the caller
// may retry it as is once space is freed; the store resumes writing by
// itself then. It is returned at once, so a full disk never turns into a
// hang.
type DiskFullError struct {
	// Path is the store's directory.
	Path string
	// Free is how many bytes were free on its file system.
	Free uint64
	// Need is how many bytes must be free for the write: its own size plus
	// the headroom the store keeps so that its engine can always finish
	// what it has begun.
	Need uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("disk full: the file system of store %s has %s free and needs %s free (the store keeps headroom so that it never fails halfway); nothing was stored: free space there or grow the volume, then retry (graft resumes by itself)",
		e.Path, formatBytes(e.Free), formatBytes(e.Need))
}

// Unwrap makes errors.Is(err, ErrDiskFull) hold.
func (e *DiskFullError) Unwrap() error { return ErrDiskFull }

// FailedError reports a store whose engine failed a write it had begun
// (an I/O error of the disk, say): the store refuses every call from then
// on rather than risk acknowledging what is not on disk. What was
// acknowledged before is durable; a restart recovers it.
type FailedError struct {
	Path string
	Err  error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("store %s failed a write and accepts no more calls: %v (check the disk, then restart the core; everything acknowledged before is kept)", e.Path, e.Err)
}

// Unwrap exposes both ErrStoreFailed and the cause.
func (e *FailedError) Unwrap() []error { return []error{ErrStoreFailed, e.Err} }

// formatBytes renders a byte count for people: 1.5 MiB, 312 KiB, 20 B.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// CheckActorName returns an error if name cannot be used as an actor name:
// empty, over 255 bytes, or containing control characters.
func CheckActorName(name string) error {
	if name == "" {
		return ErrEmptyActorName
	}
	if len(name) > 255 {
		return fmt.Errorf("actor name %.32q... is %d bytes, over 255: %w", name, len(name), ErrInvalidName)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("actor name %q has a control character at byte %d: %w", name, i, ErrInvalidName)
	}
	return nil
}

// IDReuseError refuses a send whose id the actor already accepted for a
// different payload. An identical retry is a duplicate (nothing new is
// stored); a different payload under the same id is almost always a client
// bug (a reused counter, a clash of ids), and dropping it silently, as a
// duplicate, would lose it. The message shows both payloads' digests.
type IDReuseError struct {
	Actor, ID string
	// Seq is the sequence number the id was first accepted under.
	Seq uint64
	// Stored and Given are hex sha256 prefixes of the first payload and of
	// this one.
	Stored, Given string
}

func (e *IDReuseError) Error() string {
	return fmt.Sprintf("message id %q of actor %q was first used for message %d with another payload (sha256 %s…), not this one (sha256 %s…): nothing was stored; a retry must resend the same payload, a new message needs a new id",
		e.ID, e.Actor, e.Seq, e.Stored, e.Given)
}

// Unwrap returns ErrIDReused.
func (e *IDReuseError) Unwrap() error { return ErrIDReused }
