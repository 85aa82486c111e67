package core

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// A module reads a new state, its own schema and those it migrates up
// from; a newer schema is refused at the start, naming both versions and
// what to do, so that the actor's messages wait instead of failing.
func TestReadableStates(t *testing.T) {
	v1 := dynamic.Info{Behaviour: "kv", CodeVersion: "1.0.0", SchemaVersion: 1}
	v2 := dynamic.Info{Behaviour: "kv", CodeVersion: "2.0.0", SchemaVersion: 2, MigratesFrom: []uint32{1}}
	assert.NoError(t, readable("a", mailbox.State{}, v1), "a new actor")
	assert.NoError(t, readable("a", mailbox.State{Schema: 1, Module: "1.0.0", Data: []byte("{}")}, v1))
	assert.NoError(t, readable("a", mailbox.State{Schema: 1, Module: "1.0.0", Data: []byte("{}")}, v2), "migrated up")
	err := readable("a", mailbox.State{Schema: 2, Module: "2.0.0", Data: []byte("{}")}, v1)
	assert.True(t, errors.Is(err, ErrStateUnreadable))
	assert.ErrorContains(t, err, "schema 2, written by kv 2.0.0; this core runs kv 1.0.0")
	assert.ErrorContains(t, err, "upgrade this core's kv")
}
