package core

import (
	"sync"
	"time"
)

// A canary's actors keep their failing messages. While a canary upgrade
// bakes, a message that fails MaxAttempts times on the new version is not
// dead-lettered: the failures count against the new version (the gates
// see them), and if the canary is rolled back the old version handles the
// message in its place in the mailbox, so that no message of the canary
// leaves its sender's order. The message is retried with a backoff
// (heldRetryMin doubling to heldRetryMax) and the actor is idle between
// tries, so a pause for the move back never waits for it. Once the hold
// is lifted (the bake ended), the next failure dead-letters it as usual.
//
//	attempt < MaxAttempts ──fail──> retry at once
//	attempt ≥ MaxAttempts ──fail──> held? ── yes ──> retry after a backoff
//	                                          └─ no ──> dead letter

const (
	heldRetryMin = 50 * time.Millisecond
	heldRetryMax = 2 * time.Second
)

// heldSet names the actors whose dead letters are held back.
type heldSet struct {
	mu    sync.Mutex
	names map[string]bool
}

func (h *heldSet) set(names []string, hold bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == nil {
		h.names = map[string]bool{}
	}
	for _, n := range names {
		if hold {
			h.names[n] = true
		} else {
			delete(h.names, n)
		}
	}
}

func (h *heldSet) has(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[name]
}

// HoldDeadLetters holds back (hold) or lets go the dead letters of actors:
// the upgrade machinery holds a canary group's while it bakes.
func (h *UpgradeHooks) HoldDeadLetters(actors []string, hold bool) {
	h.c.held.set(actors, hold)
}

// heldMessage is the message a hold kept, and the attempts it had made
// when its actor moved to another module: on the module it moved to (the
// old version, after a rollback) it gets MaxAttempts tries of its own.
type heldMessage struct {
	seq      uint64
	attempts uint32 // its attempts when last held
	base     uint32 // its attempts when its actor moved (0: it has not)
}

// moved notes that the actor moved to another module; the caller holds
// a.mu.
func (h *heldMessage) moved() {
	if h.seq != 0 {
		h.base = h.attempts
	}
}

// heldAttemptsLeft says whether the held message seq, at its n-th
// attempt, still has tries on the module its actor moved to.
func (a *actor) heldAttemptsLeft(seq uint64, n uint32) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.held
	return h.seq == seq && h.base > 0 && int(n-h.base) < a.core.cfg.MaxAttempts
}

// holdRetry keeps a message that failed its n-th attempt (n at least
// MaxAttempts) for a retry after a backoff, instead of dead-lettering it.
func (a *actor) holdRetry(seq uint64, n uint32) {
	delay := min(heldRetryMin<<min(int(n)-a.core.cfg.MaxAttempts, 6), heldRetryMax)
	a.mu.Lock()
	a.retryAt.Store(time.Now().Add(delay).UnixNano())
	a.held.seq, a.held.attempts = seq, n
	a.mu.Unlock()
	time.AfterFunc(delay, a.kick)
	if int(n) == a.core.cfg.MaxAttempts {
		a.logger().Info("message kept in the mailbox, not dead-lettered: its actor is a canary being judged", "seq", seq, "attempts", n)
	}
}

// retryLater says whether the actor waits out a held message's backoff:
// one atomic load for every batch of every actor.
func (a *actor) retryLater() bool {
	at := a.retryAt.Load()
	return at != 0 && time.Now().UnixNano() < at
}
