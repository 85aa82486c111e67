package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/graft-host/graft/core/control"
)

// The timer load. Each configured actor of behaviour "ctm" has a driver
// that, at random short gaps, asks it (with a call, retried with the same
// id like every load operation) to set a timer from its handler: to
// itself, to the other one or to a virtual actor ctm/vK (created by the
// timer's first message), due 50-500 ms later (one in seven 1-3 s, so some
// span a core restart), by SendAfter or SendAt; a few are chains that
// re-arm themselves from the fired handler; a quarter of the single ones
// are then cancelled, at once or after a random part of their delay, so
// some cancels race the fire. The handler's reply carries the timer id
// and its clock, which the check needs.

// ctmBehaviour is the behaviour of the timer and spawn actors.
const ctmBehaviour = "ctm"

// virtualTargets is how many virtual actors (ctm/v0...) timers go to.
const virtualTargets = 4

// burstSize is how many timers a timer-kill event sets before its kill.
const burstSize = 6

// startTimerLoad starts one timer driver per configured "ctm" actor.
func (r *Runner) startTimerLoad(ctx context.Context, stop <-chan struct{}, wg *sync.WaitGroup) {
	for i := range r.tmActors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.timerDriver(ctx, stop, i)
		}()
	}
}

// timerDriver arms (and sometimes cancels) timers on r.tmActors[i] until
// stop is closed, after its operation in flight.
func (r *Runner) timerDriver(ctx context.Context, stop <-chan struct{}, i int) {
	owner := r.tmActors[i]
	rng := rand.New(rand.NewPCG(uint64(r.opts.Seed), uint64(2000+i)))
	for n := 0; ; n++ {
		gap := time.Duration(30+rng.IntN(120)) * time.Millisecond
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		r.timerStep(ctx, rng, owner, fmt.Sprintf("%s.t%d", owner, n))
	}
}

// timerStep is one operation of a driver. Every random choice is drawn
// before the first call, so the sequence of choices depends on the seed
// only.
func (r *Runner) timerStep(ctx context.Context, rng *rand.Rand, owner, tag string) {
	op := TimerOp{Tag: tag, Owner: owner, To: r.timerTarget(rng, owner)}
	delay := timerDelay(rng)
	chain, at := rng.IntN(100) < 8, rng.IntN(100) < 30
	cancel, racy := rng.IntN(100) < 25, rng.IntN(2) == 0
	wait := time.Duration(rng.Int64N(int64(delay) + 1))
	links, gap := 2+rng.IntN(3), time.Duration(50+rng.IntN(150))*time.Millisecond
	switch {
	case chain:
		op.To, op.After, op.Links, op.Gap = owner, delay, links, gap
		r.arm(ctx, op)
		return
	case at:
		op.At = time.Now().Add(delay).UnixNano()
	default:
		op.After = delay
	}
	op = r.arm(ctx, op)
	if !cancel || !op.Acked {
		return
	}
	if racy && waitTick(ctx, wait) != nil {
		return
	}
	r.cancel(ctx, op)
}

// timerDelay is a timer's delay: 50-500 ms, one time in seven 1-3 s.
func timerDelay(rng *rand.Rand) time.Duration {
	if rng.IntN(7) == 0 {
		return time.Duration(1000+rng.IntN(2000)) * time.Millisecond
	}
	return time.Duration(50+rng.IntN(450)) * time.Millisecond
}

// timerTarget picks where a timer of owner goes: itself, another
// configured "ctm" actor, or a virtual one.
func (r *Runner) timerTarget(rng *rand.Rand, owner string) string {
	switch n := rng.IntN(10); {
	case n < 4:
		return owner
	case n < 7:
		return r.tmActors[rng.IntN(len(r.tmActors))]
	}
	return fmt.Sprintf("%s/v%d", ctmBehaviour, rng.IntN(virtualTargets))
}

// callCtm calls a "ctm" actor with payload under id, retrying with the
// same id until it is answered (see attempt), and returns the reply.
func (r *Runner) callCtm(ctx context.Context, actor, id, payload string) ([]byte, error) {
	var reply []byte
	err := r.attempt(ctx, func(ctx context.Context) error {
		resp, err := r.client.Call(ctx, actor, control.CallRequest{
			SendRequest: control.SendRequest{Text: payload, ID: id},
			TimeoutMS:   (requestTimeout - 2*time.Second).Milliseconds(),
		})
		reply = resp.Reply
		return err
	})
	return reply, err
}

// arm has op.Owner's handler set the timer op describes, records the op
// and returns it with what the reply said.
func (r *Runner) arm(ctx context.Context, op TimerOp) TimerOp {
	op.Sent = time.Now().UnixNano()
	reply, err := r.callCtm(ctx, op.Owner, "arm:"+op.Tag, op.command())
	if err == nil {
		var rep struct {
			ID  string `json:"id"`
			Now int64  `json:"now"`
		}
		if jerr := json.Unmarshal(reply, &rep); jerr != nil || rep.ID == "" {
			r.note("arm %s on %s: unreadable reply %q", op.Tag, op.Owner, reply)
		}
		op.Acked, op.ID, op.SetAt, op.AckAt = true, rep.ID, max(rep.Now, op.Sent), time.Now().UnixNano()
		r.stats.timers.Add(1)
	} else {
		r.note("arm %s on %s not acknowledged: %v", op.Tag, op.Owner, err)
	}
	r.hist.AddTimer(op)
	return op
}

// cancel has the owner of the committed timer t cancel it, and records it.
func (r *Runner) cancel(ctx context.Context, t TimerOp) {
	_, err := r.callCtm(ctx, t.Owner, "cancel:"+t.Tag, "cancel "+t.ID)
	op := CancelOp{Tag: t.Tag, Owner: t.Owner, ID: t.ID, Acked: err == nil, AckAt: time.Now().UnixNano()}
	if err == nil {
		r.stats.cancels.Add(1)
	} else {
		r.note("cancel %s on %s not acknowledged: %v", t.Tag, t.Owner, err)
	}
	r.hist.AddCancel(op)
}

// timerKill is the fault that leaves committed timers pending across a
// kill -9: it sets burstSize timers due 20-500 ms later (half by SendAt,
// so their due order is known), waits for their acknowledgements (at most
// a few seconds: a stopped module may hold them up; those are retried
// after the restart), then kills the core and starts it again. Most of
// them come due while the core is down and must fire at the restart, once
// each and in due order.
func (r *Runner) timerKill(ctx context.Context, pick int, async *sync.WaitGroup) error {
	n := r.stats.timerKills.Add(1)
	rng := rand.New(rand.NewPCG(uint64(pick), uint64(n)))
	now := time.Now()
	acked := make(chan struct{}, burstSize)
	for k := 0; k < burstSize; k++ {
		owner := r.tmActors[k%len(r.tmActors)]
		op := TimerOp{Tag: fmt.Sprintf("b%d.%d", n, k), Owner: owner, To: r.timerTarget(rng, owner)}
		if d := time.Duration(20+rng.IntN(480)) * time.Millisecond; k%2 == 0 {
			op.At = now.Add(d + 100*time.Millisecond).UnixNano()
		} else {
			op.After = d
		}
		async.Add(1)
		go func() {
			defer async.Done()
			r.arm(ctx, op)
			acked <- struct{}{}
		}()
	}
	deadline := time.After(5 * time.Second)
wait:
	for k := 0; k < burstSize; k++ {
		select {
		case <-acked:
		case <-deadline:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := r.killCore(ctx); err != nil {
		return err
	}
	return r.startCore(ctx)
}

// timersSettleTimeout bounds the wait at the end for every pending timer
// to fire (the longest is due 3 s after it was set, a chain about a second
// after its last fire).
const timersSettleTimeout = 60 * time.Second

// settleTimers waits until no actor of "ctm" has a pending timer and every
// queue is empty, twice in a row (a fired chain link sets the next timer).
func (r *Runner) settleTimers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, timersSettleTimeout)
	defer cancel()
	quiet := 0
	var last string
	for quiet < 2 {
		if err := r.drain(ctx); err != nil {
			return fmt.Errorf("timers did not settle: %w", err)
		}
		pending, err := r.pendingTimers(ctx)
		switch {
		case err != nil:
			last, quiet = err.Error(), 0
		case pending != "":
			last, quiet = pending, 0
		default:
			quiet++
		}
		if err := waitTick(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("timers still pending after %s: %s", timersSettleTimeout, last)
		}
	}
	return nil
}

// pendingTimers describes the pending timers of every "ctm" actor that
// may hold some ("" for none).
func (r *Runner) pendingTimers(ctx context.Context) (string, error) {
	st, err := r.statusWithin(ctx, 5*time.Second)
	if err != nil {
		return "", err
	}
	out := ""
	for _, a := range st.Actors {
		if a.Behaviour != ctmBehaviour {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ts, err := r.client.Timers(tctx, a.Name)
		cancel()
		if err != nil {
			return "", fmt.Errorf("list the timers of %s: %w", a.Name, err)
		}
		if len(ts) > 0 {
			out += fmt.Sprintf(" %s(%d, first due %s)", a.Name, len(ts), ts[0].Due.Format(time.RFC3339Nano))
		}
	}
	return out, nil
}
