package sdk_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"graft/dynamic/sdk"
)

type v1 struct {
	N int `json:"n"`
}
type v2 struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}
type v3 struct {
	Count int    `json:"count"`
	Name  string `json:"name"`
}

func codec() *sdk.Codec[v3] {
	return sdk.JSONCodec[v3](3).
		Up(1, sdk.JSONStep(func(o v1) (v2, error) { return v2{N: o.N, Name: "anon"}, nil })).
		Up(2, sdk.JSONStep(func(o v2) (v3, error) { return v3{Count: o.N, Name: o.Name}, nil })).
		Down(3, sdk.JSONStep(func(n v3) (v2, error) { return v2{N: n.Count, Name: n.Name}, nil }))
}

func TestCodecChainsUpAndDown(t *testing.T) {
	c := codec()
	s, err := c.Decode(1, []byte(`{"n":5}`))
	require.NoError(t, err)
	require.Equal(t, v3{Count: 5, Name: "anon"}, s)

	enc, err := c.Encode(s)
	require.NoError(t, err)
	down, err := c.Migrate(enc, 3, 2)
	require.NoError(t, err)
	require.JSONEq(t, `{"n":5,"name":"anon"}`, string(down))

	require.Equal(t, []uint32{1, 2}, c.MigratesFrom())
	require.Equal(t, []uint32{2}, c.MigratesTo())
}

func TestCodecMissingStepIsClear(t *testing.T) {
	c := codec()
	_, err := c.Migrate([]byte(`{}`), 3, 1)
	require.ErrorIs(t, err, sdk.ErrNoMigration)
	var me *sdk.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, uint32(2), me.StepFrom)
	require.Equal(t, uint32(1), me.StepTo)
	require.EqualError(t, err, "cannot migrate state from schema 3 to 1: no migration registered for step 2 -> 1")

	_, err = c.Decode(4, []byte(`{}`))
	require.ErrorIs(t, err, sdk.ErrNoMigration)
}

func TestCodecStepErrorNamesTheStep(t *testing.T) {
	c := sdk.JSONCodec[v2](2).Up(1, func([]byte) ([]byte, error) { return nil, errors.New("nope") })
	_, err := c.Decode(1, []byte(`{}`))
	require.EqualError(t, err, "migrate state from schema 1 to 2: step 1 -> 2: nope")
}

func TestCustomEncoding(t *testing.T) {
	c := sdk.NewCodec[string](1, func(s string) ([]byte, error) { return []byte(s), nil }, func(b []byte) (string, error) { return string(b), nil })
	s, err := c.Decode(1, []byte("raw"))
	require.NoError(t, err)
	require.Equal(t, "raw", s)
}
