package dynamic_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
)

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyTo writes src's bytes to dst, in place if dst exists (the same
// inode, as `cp` over a file does) and executable.
func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o755))
}

// startWith starts the binary at path pinned to sha, remembering through
// pins, and stops it again; it returns Start's error.
func startWith(t *testing.T, pins *dynamic.Pins, path, sha string) error {
	t.Helper()
	cfg := config(t, "echo")
	cfg.Path, cfg.SHA256, cfg.Pins = path, sha, pins
	m, err := dynamic.Start(context.Background(), cfg)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Stop(ctx))
	}
	return err
}

// A binary remembered as hashed is trusted again only as long as it is
// the same file with the same bytes: one rewritten in place, or another
// file renamed over it, is hashed again and its pin checked, whatever
// was remembered or vouched for before.
func TestPinsNeverTrustAChangedFile(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin")
	copyTo(t, bin("echo"), plugin)
	pin := sha256Hex(t, plugin)
	pins := dynamic.NewPins()

	require.NoError(t, startWith(t, pins, plugin, pin))
	assert.True(t, pins.Vouched(plugin, pin), "a start remembers the file it hashed")
	require.NoError(t, startWith(t, pins, plugin, pin), "an unchanged file starts again")

	copyTo(t, bin("faulty"), plugin) // rewritten in place: same inode
	assert.False(t, pins.Vouched(plugin, pin), "a file written since is not the one remembered")
	err := startWith(t, pins, plugin, pin)
	require.ErrorIs(t, err, dynamic.ErrBadBinary)
	assert.ErrorContains(t, err, "sha256 mismatch")

	other := filepath.Join(dir, "other")
	copyTo(t, bin("faulty"), other)
	pins.Vouch(other, sha256Hex(t, other))
	copyTo(t, bin("echo"), plugin)
	require.NoError(t, startWith(t, pins, plugin, pin), "the right bytes again")
	require.NoError(t, os.Rename(other, plugin)) // another file in its place
	err = startWith(t, pins, plugin, pin)
	require.ErrorIs(t, err, dynamic.ErrBadBinary, "a file renamed over the remembered one is checked")

	copyTo(t, bin("echo"), plugin)
	pins.Vouch(plugin, pin)
	require.NoError(t, os.Chmod(plugin, 0o700)) // a mode change moves the change time
	assert.False(t, pins.Vouched(plugin, pin))
	require.NoError(t, startWith(t, pins, plugin, pin), "hashed again, and the same bytes")
	var nilPins *dynamic.Pins
	require.NoError(t, startWith(t, nilPins, plugin, pin), "no memo: every start hashes")

	// A binary others may write is never remembered: a rewrite of the
	// same size within one tick of the clock would keep its identity.
	require.NoError(t, os.Chmod(plugin, 0o777)) //nolint:gosec // the point: a file others may write
	require.NoError(t, startWith(t, pins, plugin, pin))
	assert.False(t, pins.Vouched(plugin, pin), "a file others may write is hashed at every start")
	pins.Vouch(plugin, pin)
	assert.False(t, pins.Vouched(plugin, pin), "nor vouched for")
}

// Warm hands the module a batch of no messages: the plugin decodes the
// state (a state it cannot read is an error), runs no handler, and a
// batch after it carries on from the state the actor holds.
func TestWarmDecodesTheStateAndRunsNoHandler(t *testing.T) {
	cfg := config(t, "echo")
	cfg.Behaviour = "echo"
	m := start(t, cfg)
	ctx := context.Background()
	st, err := m.Init(ctx, "a")
	require.NoError(t, err)
	res, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: st, Messages: msgs("one")})
	require.NoError(t, err)

	require.NoError(t, m.Warm(ctx, "a", res.State))
	require.NoError(t, m.Warm(ctx, "a", dynamic.State{Schema: 1, Data: []byte(`{"count":5}`)}), "an older schema is migrated up")
	err = m.Warm(ctx, "a", dynamic.State{Schema: 99, Data: []byte(`{}`)})
	require.ErrorIs(t, err, dynamic.ErrBatchFailed, "a schema the module does not know")

	next, err := m.Handle(ctx, dynamic.Batch{Actor: "a", State: res.State, Messages: msgs("two")})
	require.NoError(t, err)
	require.JSONEq(t, `{"count":2,"last":"two"}`, string(next.State.Data))
	require.NoError(t, m.Health(ctx), "the module is well after the warm-ups")
}
