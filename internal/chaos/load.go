package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/core/control"
)

// requestTimeout bounds one attempt of a send or call; an attempt that
// runs out is retried with the same id.
const requestTimeout = 20 * time.Second

// errFinal marks an answer that retrying cannot change.
var errFinal = errors.New("final error")

// attempt runs fn until it succeeds, retrying with the same id whatever
// went wrong on the way (the core was killed, was restarting, the call
// timed out), waiting for the gate between tries. It returns nil once fn
// succeeded, an errFinal-wrapped error if the core refused the request for
// good, or ctx's error if the run gave up.
func (r *Runner) attempt(ctx context.Context, fn func(context.Context) error) error {
	for {
		if err := r.gate.wait(ctx); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		var api *control.APIError
		if errors.As(err, &api) {
			switch api.Code {
			case control.CodeBadRequest, control.CodeNotFound, control.CodeTooLarge:
				return fmt.Errorf("%w: %w", errFinal, err)
			}
			if strings.Contains(api.Msg, "dead-lettered") {
				return fmt.Errorf("%w: %w", errFinal, err)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The core is down or busy: the gate closes when the harness
		// kills it; between the kill and the gate closing, back off a
		// little instead of spinning.
		if err := waitTick(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// startLoad starts the senders and the register's callers, paced to
// Options.Rate operations per second in all; they stop after their
// operation in flight once stop is closed. The pace keeps the recorded
// states (which list every applied payload) small enough that a long run
// measures the core, not JSON encoding of ever larger states.
func (r *Runner) startLoad(ctx context.Context, stop <-chan struct{}, wg *sync.WaitGroup) {
	r.tokens = make(chan struct{}, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second / time.Duration(r.opts.Rate))
		defer t.Stop()
		for {
			select {
			case <-stop:
				close(r.tokens)
				return
			case <-ctx.Done():
				close(r.tokens)
				return
			case <-t.C:
				select {
				case r.tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	for _, actor := range r.kvActors {
		for s := 0; s < r.opts.SendersPerActor; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.sender(ctx, stop, actor, fmt.Sprintf("%s.s%d", actor, s))
			}()
		}
	}
	for c := 0; c < r.opts.Callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.caller(ctx, stop, c)
		}()
	}
}

// next waits for the pace's next token; false once the load stops.
func (r *Runner) next(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	default:
	}
	_, ok := <-r.tokens
	return ok
}

// sender sends "<name>:<n>" to actor for n = 0, 1, ..., one at a time: a
// send is acknowledged before the next starts, so the order in which the
// actor must apply them is the send order.
func (r *Runner) sender(ctx context.Context, stop <-chan struct{}, actor, name string) {
	for n := 0; r.next(stop); n++ {
		op := SendOp{Actor: actor, Sender: name, N: n}
		payload := op.Payload()
		err := r.attempt(ctx, func(ctx context.Context) error {
			_, err := r.clientFor().Send(ctx, actor, control.SendRequest{Text: payload, ID: payload, Sender: name})
			return err
		})
		op.Acked = err == nil
		r.hist.AddSend(op)
		if err != nil {
			r.note("send %s to %s not acknowledged: %v", payload, actor, err)
			return
		}
	}
}

// caller calls the register: puts of unique values and gets, in a mix
// drawn from the seed. Each call keeps its id across retries, so a call
// whose answer was lost returns the stored reply and is applied once; its
// interval runs from the first try to the answer.
func (r *Runner) caller(ctx context.Context, stop <-chan struct{}, client int) {
	rng := rand.New(rand.NewPCG(uint64(r.opts.Seed), uint64(1000+client)))
	for n := 0; r.next(stop); n++ {
		id := fmt.Sprintf("c%d-%d", client, n)
		op := CallOp{Client: client, Put: rng.IntN(2) == 0}
		payload := "get"
		if op.Put {
			op.Value = id
			payload = "put " + id
		}
		op.Call = r.hist.Now()
		var reply []byte
		err := r.attempt(ctx, func(ctx context.Context) error {
			resp, err := r.clientFor().Call(ctx, registerActor, control.CallRequest{
				SendRequest: control.SendRequest{Text: payload, ID: id, Sender: fmt.Sprintf("caller%d", client)},
				TimeoutMS:   (requestTimeout - 2*time.Second).Milliseconds(),
			})
			reply = resp.Reply
			return err
		})
		switch {
		case err == nil:
			op.Return, op.Output, op.Known = r.hist.Now(), string(reply), true
			r.hist.AddCall(op)
		case errors.Is(err, errFinal):
			// Refused or dead-lettered: never applied, so not part of the
			// register's history.
			r.note("call %s (%s) refused: %v", id, payload, err)
		default:
			r.hist.AddCall(op) // outcome unknown
			r.note("call %s (%s) abandoned: %v", id, payload, err)
			return
		}
	}
}

// clientFor is the control client of the core a request goes to: the one
// core, or in a cluster run a live member, round robin (any member
// reaches any actor).
func (r *Runner) clientFor() *control.Client {
	if r.pick != nil {
		return r.pick()
	}
	return r.client
}
