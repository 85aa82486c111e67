package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/graft-host/graft/mailbox"
)

// readRuntime reads, from the store the stopped core left, the registry
// and every "ctm" actor (configured, spawned, virtual): the fires and init
// messages its committed state recorded, its versions, dead letters, queue
// depth and pending timers.
func (r *Runner) readRuntime(ctx context.Context, s mailbox.Reader, f *Final) error {
	recs, err := s.Actors(ctx)
	if err != nil {
		return fmt.Errorf("list the registry after the run: %w", err)
	}
	rt := RuntimeFinal{Configured: r.actors, Registry: map[string]RegistryEntry{}, Inits: map[string][]string{}}
	for _, rec := range recs {
		if _, dup := rt.Registry[rec.Name]; dup {
			return fmt.Errorf("the registry lists actor %s twice", rec.Name)
		}
		rt.Registry[rec.Name] = RegistryEntry{Behaviour: rec.Behaviour, Origin: rec.Origin}
		if rec.Behaviour != ctmBehaviour {
			continue
		}
		if err := readCtm(ctx, s, rec, f, &rt); err != nil {
			return err
		}
	}
	f.Runtime = rt
	return nil
}

// readCtm reads one "ctm" actor into f and rt.
func readCtm(ctx context.Context, s mailbox.Reader, rec mailbox.Actor, f *Final, rt *RuntimeFinal) error {
	name := rec.Name
	st, err := s.State(ctx, name)
	if err != nil {
		return fmt.Errorf("read the state of %s: %w", name, err)
	}
	v := ActorVersion{Actor: name, RecordModule: rec.Module, RecordSchema: rec.Schema, StateModule: st.Module,
		StateSchema: st.Schema, HasState: st.Module != "" || len(st.Data) > 0, Allowed: map[string]uint32{"1.0.0": 1}}
	var cs struct {
		Fired []Fire   `json:"fired"`
		Inits []string `json:"inits"`
	}
	if v.HasState {
		dec := json.NewDecoder(bytes.NewReader(st.Data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cs); err != nil {
			v.DecodeErr = err.Error()
		}
	}
	f.Versions = append(f.Versions, v)
	for i, fr := range cs.Fired {
		fr.Actor, fr.Index = name, i
		rt.Fires = append(rt.Fires, fr)
	}
	rt.Inits[name] = cs.Inits
	dls, err := s.DeadLetters(ctx, name)
	if err != nil {
		return fmt.Errorf("read the dead letters of %s: %w", name, err)
	}
	for _, d := range dls {
		f.DeadLetters[name] = append(f.DeadLetters[name], string(d.Message.Payload))
	}
	stats, err := s.Stats(name)
	if err != nil {
		return fmt.Errorf("read the queue of %s: %w", name, err)
	}
	f.Pending[name] = stats.Depth
	timers, err := s.PendingTimers(ctx, name)
	if err != nil {
		return fmt.Errorf("read the pending timers of %s: %w", name, err)
	}
	rt.Pending = append(rt.Pending, timers...)
	return nil
}
