package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// ErrNoMigration is matched (errors.Is) by every error reporting that a
// migration between two schema versions is not registered, so the plugin
// can report it as such and the core can refuse an upgrade or rollback
// before touching any state.
var ErrNoMigration = errors.New("no migration registered")

// MigrationError says which step of a requested migration is missing.
type MigrationError struct {
	From, To         uint32 // the requested migration
	StepFrom, StepTo uint32 // the first step that is not registered
}

// Error explains which step is missing, so the author knows what to add.
func (e *MigrationError) Error() string {
	return fmt.Sprintf("cannot migrate state from schema %d to %d: no migration registered for step %d -> %d",
		e.From, e.To, e.StepFrom, e.StepTo)
}

// Unwrap lets errors.Is(err, ErrNoMigration) match.
func (e *MigrationError) Unwrap() error { return ErrNoMigration }

// StepFunc converts encoded state from one schema version to the adjacent
// one. It works on bytes because the Go type of an old schema is usually
// gone from the current code; JSONStep builds one from typed functions.
type StepFunc func(data []byte) ([]byte, error)

type step struct{ from, to uint32 }

// Codec encodes an actor's state of type S at the current schema version and
// decodes state stored at any version it can migrate from. Migrations are
// chains of adjacent steps: Up(v) converts v to v+1, Down(v) converts v to
// v-1 (the "down" of an Erlang code_change, which makes rollback possible:
// the new code knows how to go back to the old schema). Register steps
// before Serve; a Codec is read-only while serving.
type Codec[S any] struct {
	version   uint32
	marshal   func(S) ([]byte, error)
	unmarshal func([]byte) (S, error)
	steps     map[step]StepFunc
}

// NewCodec returns a codec for schema version v with the given encoding;
// use it to plug in protobuf, gob or anything else.
func NewCodec[S any](v uint32, marshal func(S) ([]byte, error), unmarshal func([]byte) (S, error)) *Codec[S] {
	return &Codec[S]{version: v, marshal: marshal, unmarshal: unmarshal, steps: map[step]StepFunc{}}
}

// JSONCodec returns a codec for schema version v that encodes S as JSON, the
// typical choice: readable in a store dump and tolerant of added fields.
func JSONCodec[S any](v uint32) *Codec[S] {
	return NewCodec(v,
		func(s S) ([]byte, error) { return json.Marshal(s) },
		func(b []byte) (S, error) {
			var s S
			err := json.Unmarshal(b, &s)
			return s, err
		})
}

// JSONStep builds a StepFunc from a typed conversion between the JSON
// encodings of two schema versions' state types.
func JSONStep[Old, New any](f func(Old) (New, error)) StepFunc {
	return func(data []byte) ([]byte, error) {
		var o Old
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		n, err := f(o)
		if err != nil {
			return nil, err
		}
		return json.Marshal(n)
	}
}

// Version is the schema version Encode produces.
func (c *Codec[S]) Version() uint32 { return c.version }

// Up registers the step from schema `from` to from+1 and returns c.
func (c *Codec[S]) Up(from uint32, f StepFunc) *Codec[S] {
	c.steps[step{from, from + 1}] = f
	return c
}

// Down registers the step from schema `from` to from-1 and returns c.
func (c *Codec[S]) Down(from uint32, f StepFunc) *Codec[S] {
	if from == 0 {
		panic("github.com/graft-host/graft/sdk: Down(0): there is no schema below 0")
	}
	c.steps[step{from, from - 1}] = f
	return c
}

// Encode encodes s at the current schema version.
func (c *Codec[S]) Encode(s S) ([]byte, error) { return c.marshal(s) }

// Decode decodes data stored at schema version `schema`, migrating it to the
// current version first if needed.
func (c *Codec[S]) Decode(schema uint32, data []byte) (S, error) {
	var zero S
	data, err := c.Migrate(data, schema, c.version)
	if err != nil {
		return zero, err
	}
	s, err := c.unmarshal(data)
	if err != nil {
		return zero, fmt.Errorf("decode state at schema %d: %w", c.version, err)
	}
	return s, nil
}

// Migrate converts data from schema `from` to schema `to` by chaining the
// registered steps, up or down. A missing step gives a *MigrationError
// naming it, before any step runs.
func (c *Codec[S]) Migrate(data []byte, from, to uint32) ([]byte, error) {
	var path []step
	for v := from; v != to; {
		n := v + 1
		if to < v {
			n = v - 1
		}
		if c.steps[step{v, n}] == nil {
			return nil, &MigrationError{From: from, To: to, StepFrom: v, StepTo: n}
		}
		path = append(path, step{v, n})
		v = n
	}
	for _, s := range path {
		out, err := c.steps[s](data)
		if err != nil {
			return nil, fmt.Errorf("migrate state from schema %d to %d: step %d -> %d: %w", from, to, s.from, s.to, err)
		}
		data = out
	}
	return data, nil
}

// MigratesFrom lists the older schema versions whose state can be brought up
// to the current version, ascending.
func (c *Codec[S]) MigratesFrom() []uint32 {
	var out []uint32
	for v := c.version; v > 0 && c.steps[step{v - 1, v}] != nil; v-- {
		out = append(out, v-1)
	}
	slices.Sort(out)
	return out
}

// MigratesTo lists the older schema versions the current state can be taken
// down to (for rollback), ascending.
func (c *Codec[S]) MigratesTo() []uint32 {
	var out []uint32
	for v := c.version; v > 0 && c.steps[step{v, v - 1}] != nil; v-- {
		out = append(out, v-1)
	}
	slices.Sort(out)
	return out
}
