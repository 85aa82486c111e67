package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// drainTimeout bounds the wait for every queue to empty at the end (poison
// messages still being retried need a few seconds).
const drainTimeout = 2 * time.Minute

// finish drains the queues and lets every pending timer fire, measures
// the core's descriptors against a fresh core's, stops it, checks for
// leftovers and reads the final state from the store.
func (r *Runner) finish(ctx context.Context) (Final, error) {
	if err := r.settleTimers(ctx); err != nil {
		r.note("%v", err)
	}
	afterChaos, err := r.sampleFDs(ctx, minOf)
	if err != nil {
		return Final{}, err
	}
	chaosKinds := ""
	if p := r.currentCore(); p != nil {
		chaosKinds = fdKinds(p.info.pid, r.storeDir)
	}
	if err := r.stopAndInspect(ctx, "graceful stop after the chaos"); err != nil {
		return Final{}, err
	}
	// A fresh core on the same store and binaries is the yardstick for
	// descriptors: the chaos core must not hold more. It runs without
	// passivation: with it, a fresh core whose ctm actors are all idle
	// would not start their module at all, and the chaos core's warm one
	// would read as a leak.
	if err := os.WriteFile(r.configPath, []byte(r.config(false)), 0o600); err != nil {
		return Final{}, fmt.Errorf("write the baseline's config: %w", err)
	}
	if err := r.startCore(ctx); err != nil {
		return Final{}, fmt.Errorf("restart for the descriptor baseline: %w", err)
	}
	fresh, err := r.sampleFDs(ctx, maxOf)
	if err != nil {
		return Final{}, err
	}
	if afterChaos > fresh {
		freshKinds := ""
		if p := r.currentCore(); p != nil {
			freshKinds = fdKinds(p.info.pid, r.storeDir)
		}
		r.leak("the core held %d descriptors (outside the store) after the chaos, a fresh core on the same store %d (after the chaos: %s; fresh: %s)",
			afterChaos, fresh, chaosKinds, freshKinds)
	}
	if err := r.stopAndInspect(ctx, "graceful stop of the fresh core"); err != nil {
		return Final{}, err
	}
	f, err := r.readStore(ctx)
	if err != nil {
		return Final{}, err
	}
	r.mu.Lock()
	f.Leaks = append(f.Leaks, r.leaks...)
	r.mu.Unlock()
	return f, nil
}

// drain waits until no actor has a queued or in-flight message.
func (r *Runner) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	var last string
	for {
		st, err := r.statusWithin(ctx, 5*time.Second)
		if err == nil {
			busy := 0
			last = ""
			for _, a := range st.Actors {
				if a.Depth > 0 || a.InFlight > 0 {
					busy++
					last += fmt.Sprintf(" %s(depth %d, in flight %d)", a.Name, a.Depth, a.InFlight)
				}
			}
			if busy == 0 {
				return nil
			}
		} else {
			last = err.Error()
		}
		if err := waitTick(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("queues did not drain within %s:%s", drainTimeout, last)
		}
	}
}

// stopAndInspect stops the core gracefully, then checks that no plugin
// process and no socket file of this run is left.
func (r *Runner) stopAndInspect(ctx context.Context, when string) error {
	if err := r.stopCore(ctx); err != nil {
		return err
	}
	r.reapOrphans(ctx, when)
	for _, s := range socketsUnder(r.runDir) {
		r.mu.Lock()
		seen := r.seenSockets[s]
		r.seenSockets[s] = true
		r.mu.Unlock()
		if !seen {
			r.leak("socket file %s left after %s", s, when)
		}
	}
	return nil
}

func minOf(a, b int) int { return min(a, b) }
func maxOf(a, b int) int { return max(a, b) }

// sampleFDs counts the core's descriptors (outside the store) ten times
// over a second and folds the samples with pick: the chaos core's minimum
// against the fresh core's maximum, so a connection closing or a module
// generation finishing its stop is not mistaken for a leak, while a
// descriptor leaked per fault (which never closes) still shows.
func (r *Runner) sampleFDs(ctx context.Context, pick func(a, b int) int) (int, error) {
	p := r.currentCore()
	if p == nil {
		return 0, errors.New("no core to measure")
	}
	r.client.Close() // the harness's idle connections are not the core's leak
	out := -1
	for i := 0; i < 10; i++ {
		n, err := fdCount(p.info.pid, r.storeDir)
		if err != nil {
			return 0, err
		}
		if out < 0 {
			out = n
		}
		out = pick(out, n)
		if err := waitTick(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return out, nil
}

// readStore opens the store the stopped core left and reads every actor's
// applied payloads, dead letters, queue depth and versions, and what
// readRuntime reads of the "ctm" actors and the registry.
func (r *Runner) readStore(ctx context.Context) (Final, error) {
	s, err := pebblestore.Open(r.storeDir, mailbox.Options{})
	if err != nil {
		return Final{}, fmt.Errorf("open the store after the run: %w", err)
	}
	defer s.Close()
	return r.readFinal(ctx, s)
}

// readFinal reads the final state of every actor from a store, whichever
// backend it is.
func (r *Runner) readFinal(ctx context.Context, s mailbox.Store) (Final, error) {
	var err error
	f := Final{Applied: map[string][]string{}, DeadLetters: map[string][]string{}, Pending: map[string]uint64{}}
	for _, name := range append(append([]string(nil), r.kvActors...), registerActor) {
		rec, err := s.Actor(ctx, name)
		if err != nil {
			return Final{}, fmt.Errorf("read actor %s: %w", name, err)
		}
		st, err := s.State(ctx, name)
		if err != nil {
			return Final{}, fmt.Errorf("read the state of %s: %w", name, err)
		}
		v := ActorVersion{Actor: name, RecordModule: rec.Module, RecordSchema: rec.Schema,
			StateModule: st.Module, StateSchema: st.Schema, HasState: st.Module != "" || len(st.Data) > 0}
		if name == registerActor {
			v.Allowed = map[string]uint32{"1.0.0": 1}
			var reg struct {
				Value *string `json:"value"`
			}
			if err := json.Unmarshal(st.Data, &reg); err != nil && v.HasState {
				v.DecodeErr = err.Error()
			}
		} else {
			v.Allowed = map[string]uint32{"1.0.0": 1, "2.0.0": 2, badCode: 2}
			applied, err := decodeKV(st)
			if err != nil && v.HasState {
				v.DecodeErr = err.Error()
			}
			f.Applied[name] = applied
		}
		f.Versions = append(f.Versions, v)
		dls, err := s.DeadLetters(ctx, name)
		if err != nil {
			return Final{}, fmt.Errorf("read the dead letters of %s: %w", name, err)
		}
		for _, d := range dls {
			f.DeadLetters[name] = append(f.DeadLetters[name], string(d.Message.Payload))
		}
		stats, err := s.Stats(name)
		if err != nil {
			return Final{}, fmt.Errorf("read the queue of %s: %w", name, err)
		}
		f.Pending[name] = stats.Depth
	}
	if err := r.readRuntime(ctx, s, &f); err != nil {
		return Final{}, err
	}
	if f.Upgrades, err = s.ListHistory(ctx); err != nil {
		return Final{}, fmt.Errorf("read the upgrade history: %w", err)
	}
	return f, nil
}

// decodeKV reads the applied list of a "ckv" state under its own schema:
// schema 1 is {n, applied}, schema 2 {count, last, applied}. Unknown
// fields are refused, so a state tagged with the wrong schema is caught.
func decodeKV(st mailbox.State) ([]string, error) {
	var dst any
	var applied *[]string
	switch st.Schema {
	case 1:
		var v struct {
			N       int      `json:"n"`
			Applied []string `json:"applied"`
		}
		dst, applied = &v, &v.Applied
	case 2:
		var v struct {
			Count   int      `json:"count"`
			Last    string   `json:"last"`
			Applied []string `json:"applied"`
		}
		dst, applied = &v, &v.Applied
	default:
		return nil, fmt.Errorf("unknown schema %d", st.Schema)
	}
	dec := json.NewDecoder(bytes.NewReader(st.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return nil, fmt.Errorf("decode schema %d state: %w", st.Schema, err)
	}
	return *applied, nil
}
