package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// actor drives one actor: it reads a batch from the mailbox, has the module
// handle it out of process and commits the result. It owns the actor's
// committed state between commits. Its goroutine exists only while there is
// work: an idle actor parks and is kicked awake by the store's notification
// of a new message (or by Resume), so 100,000 idle actors cost no stacks.
//
// An actor is a supervisor child: Done is closed when it ends, Err says why
// (nil after Stop).
type actor struct {
	core *Core
	spec ActorConfig

	ctx    context.Context // the actor's lifetime; cancelled to force a stop
	cancel context.CancelFunc

	mu        sync.Mutex
	retryAt   atomic.Int64 // a held message's next try, unix ns (held.go); read at every batch, so no lock
	held      heldMessage
	pool      *modulePool
	private   bool // pool belongs to this actor alone
	state     mailbox.State
	epoch     uint64
	running   bool          // a loop goroutine exists
	wake      bool          // work may have arrived while it ran
	idle      chan struct{} // closed when the running loop exits
	paused    bool
	stopping  bool
	abandon   bool // Stop abandons the batch in flight at once (abandonOnStop)
	finishing bool // finish has begun: done is closed exactly once
	batchMax  int  // shrinks to find a poison message, grows back on success
	suspect   bool // its next message is retried alone in a quarantine module
	// committing is the state of the batch being committed, from its
	// Handle's return to its commit's; ahead, set by a pause that found
	// the batch before that point, is told of it then (pauseAhead).
	committing *mailbox.State
	ahead      func(mailbox.State)
	err        error
	done       chan struct{}
	exited     bool     // done is closed
	onDone     []func() // OnDone's callbacks, run once done is closed
	started    time.Time

	ready     atomic.Bool // its start finished: required actors may start
	processed atomic.Uint64
	failed    atomic.Uint64
	inFlight  atomic.Int64
	// lastWork is when it last started or made progress (UnixNano): the
	// sweeper passivates an actor idle for its PassivateAfter.
	lastWork atomic.Int64
}

// Done implements supervisor.Child.
func (a *actor) Done() <-chan struct{} { return a.done }

// OnDone implements supervisor.Notifier: the supervisor learns of the
// actor's exit from it rather than from a goroutine per actor blocked on
// Done (a million of them were most of a million actors' memory and of
// the collector's work).
func (a *actor) OnDone(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exited {
		go f()
		return
	}
	a.onDone = append(a.onDone, f)
}

// Err implements supervisor.Child.
func (a *actor) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// kick makes sure a loop runs to look at the mailbox. Before the actor's
// start finished (ready) it does nothing: the start vets the state first
// (readable, a down-migration) and kicks once it is done, so a send that
// arrives meanwhile never runs a batch on a state the module cannot read.
func (a *actor) kick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping || a.paused || a.err != nil || !a.ready.Load() {
		return
	}
	if a.running {
		a.wake = true
		return
	}
	a.running = true
	a.idle = make(chan struct{})
	go a.loop()
}

// loop processes batches until the mailbox is empty, the actor is paused or
// stopping, or it fails.
func (a *actor) loop() {
	for {
		a.mu.Lock()
		if a.paused || a.stopping {
			a.park()
			a.mu.Unlock()
			return
		}
		a.wake = false
		a.mu.Unlock()

		progressed, err := a.step()
		if err != nil {
			a.crash(err)
			return
		}
		if progressed {
			a.lastWork.Store(time.Now().UnixNano())
			continue
		}
		a.mu.Lock()
		if a.wake && !a.paused && !a.stopping {
			a.mu.Unlock()
			continue
		}
		a.park()
		a.mu.Unlock()
		return
	}
}

// park ends the loop goroutine. Callers hold a.mu.
func (a *actor) park() {
	a.running = false
	close(a.idle)
}

// crash ends the actor with err; the supervisor decides what follows.
func (a *actor) crash(err error) {
	if a.ctx.Err() != nil {
		err = nil // a forced stop, not a crash
	}
	a.mu.Lock()
	a.park()
	a.mu.Unlock()
	a.finish(err)
}

// finish ends the actor once: closes its private module and Done.
func (a *actor) finish(err error) {
	a.mu.Lock()
	if a.finishing {
		// Another caller (a crash racing a forced Stop) is ending it.
		a.mu.Unlock()
		<-a.done
		return
	}
	a.finishing = true
	a.err = err
	a.stopping = true
	pool, private := a.pool, a.private
	a.mu.Unlock()
	a.cancel()
	if private {
		ctx, cancel := context.WithTimeout(context.Background(), a.core.stopTimeout(a.spec.Behaviour))
		_ = pool.close(ctx)
		cancel()
	}
	if err != nil {
		a.logger().Error("actor crashed", "err", err)
	}
	a.core.forget(a)
	a.mu.Lock()
	close(a.done)
	a.exited = true
	callbacks := a.onDone
	a.onDone = nil
	a.mu.Unlock()
	for _, f := range callbacks {
		go f() // never on the caller's goroutine, which may be a supervisor's
	}
}

// Stop implements supervisor.Child: stop taking batches, let the batch in
// flight commit, and at ctx's deadline abandon it (nothing of it commits).
// After abandonOnStop it abandons the batch at once.
func (a *actor) Stop(ctx context.Context) error {
	a.mu.Lock()
	a.stopping = true
	running, idle, abandon := a.running, a.idle, a.abandon
	a.mu.Unlock()
	if running {
		if abandon {
			a.cancel()
		}
		select {
		case <-idle:
		case <-ctx.Done():
			a.cancel() // abandon the batch in flight; it is redelivered later
			<-idle
		}
	}
	a.finish(nil)
	return nil
}

// abandonOnStop makes every later Stop abandon the batch in flight at
// once, with no grace: DestroyActor's, whether the supervisor (Terminate)
// or DestroyActor itself stops the actor.
func (a *actor) abandonOnStop() {
	a.mu.Lock()
	a.abandon = true
	a.mu.Unlock()
}

// step handles one batch. It reports whether it made progress (committed,
// or learnt something that changes the next attempt).
func (a *actor) step() (bool, error) {
	if a.retryLater() {
		return false, nil // a kick comes at retryAt
	}
	ctx := a.ctx
	began := time.Now()
	a.mu.Lock()
	max, pool, st, epoch := a.batchMax, a.pool, a.state, a.epoch
	a.mu.Unlock()

	msgs, err := a.core.store.Read(ctx, a.spec.Name, 0, max)
	if err != nil {
		return false, fmt.Errorf("read mailbox: %w", err)
	}
	if len(msgs) == 0 {
		return false, nil
	}
	msgs = cutByBytes(msgs, a.core.cfg.MaxBatchBytes)
	a.mu.Lock()
	suspect := a.suspect
	a.mu.Unlock()
	if suspect {
		// A shared module crashed with this message alone in its batch, but
		// other actors' batches were in flight too: which one killed it is
		// unknown. Retry it alone in a module process of its own, where a
		// crash can only be its fault.
		q := newModulePool(pool.name+"/quarantine", pool.config(), a.core.log)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), a.core.stopTimeout(a.spec.Behaviour))
			defer cancel()
			_ = q.close(ctx)
		}()
		pool, msgs = q, msgs[:1]
	}
	mod, err := pool.get(ctx)
	if err != nil {
		return false, fmt.Errorf("get module: %w", err)
	}
	fresh := st.Module == "" && st.Data == nil
	initInHandle := fresh && mod.Info().InitInHandle // the plugin runs Init in the batch
	if fresh && !initInHandle {
		init, err := mod.Init(ctx, a.spec.Name)
		if err != nil {
			return a.moduleFailed(ctx, pool, mod, msgs, fmt.Errorf("init: %w", err))
		}
		st = mailbox.State{Schema: init.Schema, Module: mod.Info().CodeVersion, Data: init.Data}
	}
	tr := a.core.trace.startBatch(ctx, &a.spec, mod.Info().CodeVersion, msgs)
	var res *dynamic.BatchResult
	committed := false
	defer func() { tr.end(res, committed, err) }()
	batch := dynamic.Batch{Actor: a.spec.Name, State: dynamic.State{Schema: st.Schema, Data: st.Data}, Messages: make([]dynamic.Message, len(msgs)), Init: initInHandle}
	for i, m := range msgs {
		batch.Messages[i] = dynamic.Message{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: m.Payload, Attempt: m.Attempts + 1,
			CallChain: m.CallChain, TimerID: m.TimerID, TraceParent: tr.parent(i)}
	}
	a.inFlight.Store(int64(len(msgs)))
	res, err = mod.Handle(ctx, batch)
	a.inFlight.Store(0)
	if err != nil {
		return a.moduleFailed(ctx, pool, mod, msgs, err)
	}
	pool.healthy()
	if len(res.State.Data) > a.core.cfg.MaxStateSize {
		// A plugin that does not enforce the limit itself: which message
		// grew the state is known only for a batch of one.
		if len(msgs) > 1 {
			a.setBatchMax(len(msgs) / 2)
			return true, nil
		}
		return true, a.messageFailed(ctx, epoch, msgs[0], fmt.Sprintf("the new state is %d bytes, over the %d-byte limit (limits.max_state_size); nothing of this message is applied",
			len(res.State.Data), a.core.cfg.MaxStateSize))
	}
	if k, reason := a.firstFailure(msgs, res); k >= 0 {
		if k > 0 {
			// Commit the good prefix first: handle it again on its own
			// (handlers are deterministic) so its state is known.
			a.setBatchMax(k)
			return true, nil
		}
		return true, a.messageFailed(ctx, epoch, msgs[0], reason)
	}
	next := mailbox.State{Schema: res.State.Schema, Module: mod.Info().CodeVersion, Data: res.State.Data}
	a.committingNow(&next)
	c, earliest := a.commitOf(epoch, st, next, msgs, res, tr)
	err = a.waitForDisk(ctx, "the batch's commit", func() error { return a.core.store.Commit(ctx, c) })
	a.committingNow(nil)
	if a.retryCommit(ctx, err) {
		return true, nil
	}
	if errors.Is(err, mailbox.ErrTooLarge) {
		// The store refused the whole commit as over one of its limits
		// (etcd's --max-txn-ops or request size: a message that sends a
		// great many), and wrote nothing. Halve the batch until the
		// message at fault is alone, and fail that one, with the store's
		// words, rather than crash the actor on it for good.
		if len(msgs) > 1 {
			a.setBatchMax(len(msgs) / 2)
			return true, nil
		}
		return true, a.messageFailed(ctx, epoch, msgs[0], "its commit alone (the new state, its sends, timers and spawns) is over the store's limits: "+err.Error())
	}
	if err != nil {
		return false, fmt.Errorf("commit batch %d..%d: %w", msgs[0].Seq, c.Through, err)
	}
	if !earliest.IsZero() {
		a.core.timerSet(earliest)
	}
	a.mu.Lock()
	a.state = next
	a.batchMax = min(a.batchMax*2, a.core.cfg.BatchSize)
	a.suspect = false
	a.mu.Unlock()
	a.processed.Add(uint64(len(msgs)))
	committed = true
	a.core.cfg.Observer.BatchCommitted(a.spec.Name, a.spec.Behaviour, next.Module, len(msgs), time.Since(began))
	a.core.delivered(a.spec.Name, msgs, res.Results)
	return true, nil
}

// commitOf is the commit of the handled batch msgs, from state st to
// next, with its results' sends (carrying the trace of the message that
// sent them), replies and effects, and the earliest timer it sets.
func (a *actor) commitOf(epoch uint64, st, next mailbox.State, msgs []mailbox.Message, res *dynamic.BatchResult, tr *batchTrace) (mailbox.Commit, time.Time) {
	c := mailbox.Commit{Actor: a.spec.Name, Epoch: epoch, Through: msgs[len(msgs)-1].Seq, State: &next}
	for i, r := range res.Results {
		for _, o := range r.Outgoing {
			c.Outgoing = append(c.Outgoing, mailbox.Outgoing{To: o.To, Message: mailbox.Message{Sender: a.spec.Name, Payload: o.Payload, TraceParent: tr.parent(i)}})
		}
		if (r.HasReply || r.Refusal != "") && msgs[i].ID != "" {
			c.Replies = append(c.Replies, mailbox.Reply{MessageID: msgs[i].ID, Payload: r.Reply, Refusal: r.Refusal})
		}
	}
	earliest := addEffects(&c, res.Results) // timers and spawns (effects.go)
	if keep := a.core.cfg.Behaviours[a.spec.Behaviour].VerifyWindow; keep > 0 {
		c.Handled, c.KeepHandled = handled(st, next, msgs, res.Results), keep
	}
	return c, earliest
}

// retryCommit says whether a batch whose commit failed with err (nothing
// of it committed) is to be handled again rather than crash the actor:
// the store refused an effect that firstFailure had found fine, because
// the world changed in between, and the next attempt fails that message
// alone (a failed attempt, then a dead letter), as it would have at once.
// That is a name spawned meanwhile with another behaviour, or a send
// target destroyed meanwhile. An unknown actor that is the actor itself
// (being destroyed: its ctx is cancelled, or the store no longer has it)
// is no such case.
func (a *actor) retryCommit(ctx context.Context, err error) bool {
	switch {
	case errors.Is(err, mailbox.ErrSpawnConflict):
		return true
	case errors.Is(err, mailbox.ErrUnknownActor) && ctx.Err() == nil:
		if _, serr := a.core.store.Stats(a.spec.Name); serr != nil {
			return false
		}
		a.logger().Debug("a send target was destroyed before the batch's commit: handling the batch again", "err", err)
		return true
	}
	return false
}

// firstFailure finds the first message that failed alone: an error result,
// or an effect the store would refuse (a send or timer to an unknown
// actor, a bad spawn, an oversize message), which must not fail the whole
// batch's commit.
func (a *actor) firstFailure(msgs []mailbox.Message, res *dynamic.BatchResult) (int, string) {
	var spawned spawnsSoFar
	for i := range res.Results {
		r := &res.Results[i]
		if r.Err != "" {
			return i, r.Err
		}
		if reason := a.effectFailure(r, &spawned); reason != "" {
			return i, reason
		}
		for _, o := range r.Outgoing {
			if err := a.core.checkTarget(o.To, len(o.Payload), spawned); err != nil {
				return i, fmt.Sprintf("handler sent to %q: %v", o.To, err)
			}
		}
		if r.HasReply && len(r.Reply) > a.core.cfg.MaxMessageSize {
			return i, fmt.Sprintf("reply is %d bytes, over the %d-byte message limit", len(r.Reply), a.core.cfg.MaxMessageSize)
		}
		if len(r.Refusal) > a.core.cfg.MaxMessageSize {
			return i, fmt.Sprintf("refusal is %d bytes, over the %d-byte message limit", len(r.Refusal), a.core.cfg.MaxMessageSize)
		}
	}
	return -1, ""
}

// moduleFailed handles a batch the module did not answer properly: it
// crashed, hung, or broke the protocol. The pool starts a new generation;
// the batch is retried in halves until the message that kills the module is
// alone, and that one is dead-lettered after MaxAttempts.
func (a *actor) moduleFailed(ctx context.Context, pool *modulePool, mod *dynamic.Instance, msgs []mailbox.Message, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	a.logger().Warn("batch failed in module", "messages", len(msgs), "first", msgs[0].Seq, "err", err)
	if errors.Is(err, dynamic.ErrBadResponse) || errors.Is(err, dynamic.ErrBatchFailed) {
		pool.kill(mod, a.core.stopTimeout(a.spec.Behaviour))
	}
	if len(msgs) > 1 {
		a.setBatchMax(len(msgs) / 2)
		return true, nil
	}
	a.mu.Lock()
	epoch, suspect := a.epoch, a.suspect
	a.suspect = true
	a.mu.Unlock()
	if !suspect {
		return true, nil // not proven guilty yet: retry it in quarantine
	}
	return true, a.messageFailed(ctx, epoch, msgs[0], err.Error())
}

// messageFailed counts a failed attempt at msg and dead-letters it once it
// has failed MaxAttempts times.
func (a *actor) messageFailed(ctx context.Context, epoch uint64, msg mailbox.Message, reason string) error {
	a.failed.Add(1)
	a.core.cfg.Observer.MessageFailed(a.spec.Name, a.spec.Behaviour)
	var n uint32
	err := a.waitForDisk(ctx, "a failed attempt's record", func() (err error) {
		n, err = a.core.store.RecordFailure(ctx, a.spec.Name, msg.Seq, reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record failure of message %d: %w", msg.Seq, err)
	}
	if int(n) < a.core.cfg.MaxAttempts || a.heldAttemptsLeft(msg.Seq, n) {
		return nil
	}
	if a.core.held.has(a.spec.Name) {
		a.holdRetry(msg.Seq, n)
		return nil
	}
	c := mailbox.Commit{Actor: a.spec.Name, Epoch: epoch, Through: msg.Seq,
		DeadLetters: []mailbox.DeadLetterRequest{{Seq: msg.Seq, Error: reason}}}
	if err := a.waitForDisk(ctx, "a dead letter's commit", func() error { return a.core.store.Commit(ctx, c) }); err != nil {
		return fmt.Errorf("dead-letter message %d: %w", msg.Seq, err)
	}
	a.core.cfg.Observer.DeadLettered(a.spec.Name, a.spec.Behaviour)
	a.logger().Warn("message dead-lettered", "seq", msg.Seq, "id", msg.ID, "attempts", n, "err", reason)
	if msg.ID != "" {
		a.core.waiters.deliver(a.spec.Name, msg.ID, callResult{err: fmt.Errorf("message %q to actor %q: %w after %d attempts: %s", msg.ID, a.spec.Name, ErrDeadLettered, n, reason)})
	}
	a.mu.Lock()
	a.suspect = false
	a.mu.Unlock()
	a.setBatchMax(a.core.cfg.BatchSize)
	return nil
}

// waitForDisk runs a store write, and runs it again while the store
// refuses it because its disk is full (it then stored nothing): a full disk
// holds the actor between two commits, its batch kept for later, instead
// of crashing it until its supervisor gives up. It returns the write's
// other errors as they are, and gives up when ctx ends or the actor is
// asked to stop.
func (a *actor) waitForDisk(ctx context.Context, what string, write func() error) error {
	wait := 50 * time.Millisecond
	var since time.Time
	for {
		err := write()
		if !errors.Is(err, mailbox.ErrDiskFull) {
			if err == nil && !since.IsZero() {
				a.logger().Info("disk space is back: "+what+" went through", "waited", time.Since(since).Round(time.Millisecond).String())
			}
			return err
		}
		if since.IsZero() {
			since = time.Now()
			a.logger().Error("disk full: "+what+" waits for space; nothing is lost (free space on the store's disk)", "err", err)
		}
		a.mu.Lock()
		stopping := a.stopping
		a.mu.Unlock()
		if stopping {
			a.cancel() // a stop abandons the batch, which is redelivered later
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up waiting for disk space: %w (%w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// logger is the core's logger with the actor, its behaviour and the
// module version of its committed state, which changes with upgrades.
// It is made when needed: most actors never log, and a logger per actor
// was a measurable share of a new actor's start.
func (a *actor) logger() *slog.Logger {
	return a.core.log.With("actor", a.spec.Name, "behaviour", a.spec.Behaviour, "module", a.moduleVersion())
}

func (a *actor) setBatchMax(n int) {
	a.mu.Lock()
	a.batchMax = max(1, n)
	a.mu.Unlock()
}

// Paused is an actor held between two commits (UpgradeHooks.Pause): its batch in flight has
// committed, it takes no new batch, and messages keep arriving durably.
// Exactly one of Resume or Fail must be called.
type Paused struct {
	a *actor
	// State is the actor's committed state.
	State mailbox.State
	// Epoch is the actor's ownership epoch, for commits made while paused.
	Epoch uint64
	// Module is the module serving the actor (nil if none is running).
	Module *dynamic.Instance
	// Since is when the actor stopped taking batches.
	Since time.Time
	// Drained is when its batch in flight (if any) had committed.
	Drained time.Time
}

// committingNow notes the state of the batch whose commit begins (nil once
// it ended), and tells a pause waiting for it.
func (a *actor) committingNow(st *mailbox.State) {
	a.mu.Lock()
	a.committing = st
	ahead := a.ahead
	if st != nil {
		a.ahead = nil
	}
	a.mu.Unlock()
	if st != nil && ahead != nil {
		ahead(*st)
	}
}

// pause holds the actor between commits; see UpgradeHooks.Pause. ahead,
// if not nil, is told the state that the batch in flight commits as soon
// as its Handle returned it, before pause returns: the caller can start
// migrating it while the commit syncs. It must return at once (it runs on
// the actor's goroutine). If that commit fails, the Paused's State is
// another one.
func (a *actor) pause(ctx context.Context, ahead func(mailbox.State)) (*Paused, error) {
	a.mu.Lock()
	if a.paused {
		a.mu.Unlock()
		return nil, fmt.Errorf("actor %q is already paused (an upgrade in progress?)", a.spec.Name)
	}
	if a.stopping || a.err != nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("actor %q is stopping", a.spec.Name)
	}
	a.paused = true
	since := time.Now()
	running, idle := a.running, a.idle
	var committing *mailbox.State
	if running && ahead != nil {
		if committing = a.committing; committing == nil {
			a.ahead = ahead
		}
	}
	a.mu.Unlock()
	if committing != nil {
		ahead(*committing)
	}
	if running {
		select {
		case <-idle:
		case <-ctx.Done():
			a.mu.Lock()
			a.paused, a.ahead = false, nil
			a.mu.Unlock()
			a.kick()
			return nil, fmt.Errorf("pause actor %q: waiting for its batch in flight to commit: %w", a.spec.Name, ctx.Err())
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ahead = nil // told already, or the batch in flight never reached its commit
	p := &Paused{a: a, State: a.state, Epoch: a.epoch, Since: since, Drained: time.Now()}
	if a.pool != nil {
		p.Module = a.pool.current()
	}
	return p, nil
}

// Resume lets the actor take batches again, on the module `to` (nil keeps
// its module) and from state `st` (nil keeps its state); the caller has
// committed st with the pause's epoch.
func (p *Paused) Resume(to *LoadedModule, st *mailbox.State) {
	a := p.a
	a.mu.Lock()
	if to != nil && to.pool != a.pool {
		a.retryAt.Store(0) // a held message gets its next try on the new module at once
		a.held.moved()
		if a.private {
			// An actor with a process of its own keeps one: a private pool
			// of the new version, and the old one stopped.
			old := a.pool
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), a.core.stopTimeout(a.spec.Behaviour))
				defer cancel()
				_ = old.close(ctx)
			}()
			a.pool = a.core.privatePool(a.spec, to.pool.config())
		} else {
			a.pool = to.pool
		}
	}
	if st != nil {
		a.state = *st
	}
	a.paused = false
	a.lastWork.Store(time.Now().UnixNano()) // idle from its resume, not from before its pause
	a.mu.Unlock()
	a.kick()
}

// cutByBytes keeps the longest prefix of msgs whose payloads fit max bytes,
// and at least one message (a message is never larger than the message
// limit, which the transport always carries).
func cutByBytes(msgs []mailbox.Message, max int) []mailbox.Message {
	total := 0
	for i, m := range msgs {
		total += len(m.Payload)
		if total > max && i > 0 {
			return msgs[:i]
		}
	}
	return msgs
}
