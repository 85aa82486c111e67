package sdktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/graft-host/graft/dynamic/sdk"
)

// RoundTrip checks a codec's migrations on one old state: it migrates old
// (encoded at schema from) up to the codec's version with its Up steps and
// back down with its Down steps, and fails unless down(up(old)) == old. It
// returns the state migrated up, decoded, for further checks. JSON states
// are compared as JSON values (key order and spacing do not matter), others
// byte for byte.
func RoundTrip[S any](c *sdk.Codec[S], from uint32, old []byte) (S, error) {
	var zero S
	up, err := c.Migrate(old, from, c.Version())
	if err != nil {
		return zero, fmt.Errorf("up from schema %d to %d: %w", from, c.Version(), err)
	}
	s, err := c.Decode(c.Version(), up)
	if err != nil {
		return zero, fmt.Errorf("decode the state migrated up to schema %d (%s): %w", c.Version(), up, err)
	}
	down, err := c.Migrate(up, c.Version(), from)
	if err != nil {
		return s, fmt.Errorf("down from schema %d to %d: %w", c.Version(), from, err)
	}
	if !sameState(old, down) {
		return s, fmt.Errorf("round trip through schema %d changes the state: down(up(s)) = %s, s = %s", c.Version(), down, old)
	}
	return s, nil
}

// sameState compares two encodings, as JSON values when both are JSON.
func sameState(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
