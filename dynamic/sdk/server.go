package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// server implements graftv1.BehaviourServer over a Module.
type server[S any] struct {
	graftv1.UnimplementedBehaviourServer
	m      Module[S]
	stdout *os.File // the real ones, for useRawStdio
	stderr *os.File
	host   *hostLink
	limits atomic.Pointer[limits] // set by Info
}

// currentLimits returns the host's limits (none before Info).
func (s *server[S]) currentLimits() limits {
	if l := s.limits.Load(); l != nil {
		return *l
	}
	return limits{}
}

// guard runs f like protect, and writes a panic's stack to the plugin's
// stderr, which the host relays to its log.
func (s *server[S]) guard(what string, f func() error) error {
	_, err := protect(what, func() (struct{}, error) { return struct{}{}, f() })
	s.logPanic(err)
	return err
}

// logPanic writes the stack of a *PanicError to the plugin's stderr.
func (s *server[S]) logPanic(err error) {
	var pe *PanicError
	if errors.As(err, &pe) {
		fmt.Fprintf(s.stderr, "graft/sdk: %v\n%s", pe, pe.Stack)
	}
}

func (s *server[S]) Info(_ context.Context, req *graftv1.InfoRequest) (*graftv1.InfoResponse, error) {
	useRawStdio(s.stdout, s.stderr) // see hostgone.go
	l := limitsOf(req)
	s.limits.Store(&l)
	s.host.maxMessage.Store(int64(l.message))
	if req.HostBrokerId != 0 {
		// Dial the host's call service now, not at the first Call: go-plugin's
		// broker keeps the connection info it was sent for only 5 s, so a
		// lazy dial made later would never find the host (the first Call of
		// a module that had been idle a while failed for good).
		if err := s.host.connect(req.HostBrokerId, l.callOptions()...); err != nil {
			return nil, status.Errorf(codes.Unavailable, "%s %s: cannot reach the host's call service (broker id %d): %v",
				s.m.Name, s.m.Version, req.HostBrokerId, err)
		}
	}
	c := s.m.Codec
	return &graftv1.InfoResponse{
		Behaviour:     s.m.Name,
		CodeVersion:   s.m.Version,
		SchemaVersion: c.Version(),
		MigratesFrom:  c.MigratesFrom(),
		MigratesTo:    c.MigratesTo(),
		InitInHandle:  true,
	}, nil
}

func (s *server[S]) Health(context.Context, *graftv1.HealthRequest) (*graftv1.HealthResponse, error) {
	return &graftv1.HealthResponse{Serving: true}, nil
}

func (s *server[S]) Init(ctx context.Context, req *graftv1.InitRequest) (*graftv1.InitResponse, error) {
	_, data, err := s.initState(ctx, req.Actor)
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "init %s: %v", req.Actor, err)
	}
	return &graftv1.InitResponse{State: &graftv1.State{Schema: s.m.Codec.Version(), Data: data}}, nil
}

// initState runs the behaviour's Init for actor and encodes its state, for
// the Init call and for a Handle batch with init set.
func (s *server[S]) initState(ctx context.Context, actor string) (S, []byte, error) {
	var (
		st   S
		data []byte
	)
	err := s.guard("Init", func() (err error) {
		st, err = ApplyInit(ctx, s.m.Behaviour, actor)
		s.logPanic(err)
		if err != nil {
			return err
		}
		data, err = s.m.Codec.Encode(st)
		if err != nil {
			return fmt.Errorf("encode state: %w", err)
		}
		return nil
	})
	return st, data, err
}

func (s *server[S]) Migrate(_ context.Context, req *graftv1.MigrateRequest) (*graftv1.MigrateResponse, error) {
	from := req.GetState().GetSchema()
	var data []byte
	err := s.guard("Migrate", func() (err error) {
		data, err = s.m.Codec.Migrate(req.GetState().GetData(), from, req.ToSchema)
		return err
	})
	if errors.Is(err, ErrNoMigration) {
		return nil, status.Errorf(codes.FailedPrecondition, "%s %s: %v", s.m.Name, s.m.Version, err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "%s %s: migrate %s: %v", s.m.Name, s.m.Version, req.Actor, err)
	}
	return &graftv1.MigrateResponse{State: &graftv1.State{Schema: req.ToSchema, Data: data}}, nil
}

// Handle serves a stream of batches. Batches are independent (each names
// its actor and carries its state), so they run concurrently, bounded, and
// are answered as they finish; the host matches answers by batch id.
func (s *server[S]) Handle(stream graftv1.Behaviour_HandleServer) error {
	ctx := stream.Context()
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, 4*runtime.GOMAXPROCS(0))
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil // host closed the stream or went away
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			resp := s.handleBatch(ctx, req)
			sendMu.Lock()
			defer sendMu.Unlock()
			if sendErr == nil {
				sendErr = stream.Send(resp)
			}
		}()
	}
}

// handleBatch applies the messages in order, threading the state. A message
// that fails leaves the state as it was before it (re-decoded from the last
// good encoding, in case the handler mutated a map or pointer in place).
func (s *server[S]) handleBatch(ctx context.Context, req *graftv1.HandleRequest) *graftv1.HandleResponse {
	c := s.m.Codec
	resp := &graftv1.HandleResponse{BatchId: req.BatchId}
	state, good, ok := s.batchState(ctx, req, resp)
	if !ok {
		return resp
	}
	resp.Results = make([]*graftv1.MessageResult, len(req.Messages))
	calls := s.host.caller()
	lim := s.currentLimits()
	used := 0
	for i, pm := range req.Messages {
		msg := Message{Seq: pm.Seq, ID: pm.Id, Sender: pm.Sender, Payload: pm.Payload, Attempt: pm.Attempt, CallChain: pm.CallChain, TimerID: pm.TimerId, TraceParent: pm.TraceParent}
		out := Apply(ctx, s.m.Behaviour, req.Actor, state, msg, calls)
		s.logPanic(out.Err)
		text, refused := out.Refused()
		var enc []byte
		err := out.Err
		if err == nil || refused {
			if enc, err = protect("encode state", func() ([]byte, error) { return c.Encode(out.State) }); err != nil {
				err = fmt.Errorf("encode state: %w", err)
			} else if err = errors.Join(lim.checkState(req.Actor, enc), lim.checkEffects(out.Sends, out.Reply),
				lim.checkDeferred(out.Timers, out.CancelledTimers, out.Spawns)); err != nil {
				enc, refused = nil, false
			}
		}
		var r *graftv1.MessageResult
		if err == nil || (refused && enc != nil) {
			r = &graftv1.MessageResult{Reply: out.Reply, HasReply: out.HasReply, StateChanged: !bytes.Equal(enc, good), Refusal: text}
			effects(r, out.Sends, out.Timers, out.CancelledTimers, out.Spawns)
			n, ok := lim.fits(used, r, len(enc))
			if !ok {
				err, r = fmt.Errorf("the results of this batch would exceed the %d-byte transport limit; the message is retried in a smaller batch", lim.response), nil
			} else {
				used = n
			}
		}
		if r == nil {
			msgErr := err.Error()
			if msgErr == "" {
				msgErr = "handler failed with an empty error"
			}
			resp.Results[i] = &graftv1.MessageResult{Error: msgErr}
			// Restore the state from its last good encoding: the handler
			// may have changed a map or pointer of it in place.
			if rerr := s.guard("decode state", func() (err error) { state, err = c.Decode(c.Version(), good); return err }); rerr != nil {
				resp.Results = nil
				resp.BatchError = fmt.Sprintf("restore state after failed message %d: %v", pm.Seq, rerr)
				return resp
			}
			continue
		}
		resp.Results[i] = r
		state, good = out.State, enc
	}
	resp.State = &graftv1.State{Schema: c.Version(), Data: good}
	return resp
}

// batchState is the state a batch starts from, and its encoding: Init's
// for a batch with init set, else the batch's own, migrated to the
// plugin's schema. When there is none, it writes why into resp
// (init_error or batch_error) and returns false.
func (s *server[S]) batchState(ctx context.Context, req *graftv1.HandleRequest, resp *graftv1.HandleResponse) (S, []byte, bool) {
	c := s.m.Codec
	if req.Init {
		state, good, err := s.initState(ctx, req.Actor)
		if err != nil {
			resp.InitError = err.Error() // the host names the plugin and the actor
			return state, nil, false
		}
		return state, good, true
	}
	var (
		state S
		good  []byte // encoding of state at c.Version()
	)
	in := req.GetState()
	err := s.guard("decode state", func() (err error) {
		good = in.GetData()
		if in.GetSchema() != c.Version() {
			if good, err = c.Migrate(good, in.GetSchema(), c.Version()); err != nil {
				return err
			}
		}
		state, err = c.Decode(c.Version(), good)
		return err
	})
	if err != nil {
		resp.BatchError = fmt.Sprintf("%s %s: actor %s: %v", s.m.Name, s.m.Version, req.Actor, err)
		return state, nil, false
	}
	return state, good, true
}

// effects fills r with a message's sends, timers, cancels and spawns.
func effects(r *graftv1.MessageResult, sends []Send, timers []Timer, cancels []string, spawns []Spawn) {
	if len(sends) > 0 {
		r.Outgoing = make([]*graftv1.Outgoing, len(sends))
		for j, o := range sends {
			r.Outgoing[j] = &graftv1.Outgoing{To: o.To, Payload: o.Payload}
		}
	}
	if len(timers) > 0 {
		r.Timers = make([]*graftv1.TimerSet, len(timers))
		for j, t := range timers {
			ts := &graftv1.TimerSet{Id: t.ID, To: t.To, Payload: t.Payload}
			if t.At.IsZero() {
				ts.AfterNanos = proto.Int64(int64(t.After))
			} else {
				ts.AtUnixNanos = proto.Int64(unixNanos(t.At))
			}
			r.Timers[j] = ts
		}
	}
	r.CancelTimers = cancels
	if len(spawns) > 0 {
		r.Spawns = make([]*graftv1.Spawn, len(spawns))
		for j, sp := range spawns {
			r.Spawns[j] = &graftv1.Spawn{Name: sp.Name, Behaviour: sp.Behaviour, Init: sp.Init}
		}
	}
}
