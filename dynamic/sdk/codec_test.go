package sdk_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/graft-host/graft/dynamic/sdk"
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

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func equal[T any](t *testing.T, want, got T) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("want %#v, got %#v", want, got)
	}
}

func TestCodecChainsUpAndDown(t *testing.T) {
	c := codec()
	s := must(c.Decode(1, []byte(`{"n":5}`)))(t)
	equal(t, v3{Count: 5, Name: "anon"}, s)

	enc := must(c.Encode(s))(t)
	down := must(c.Migrate(enc, 3, 2))(t)
	var got v2
	if err := json.Unmarshal(down, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, v2{N: 5, Name: "anon"}, got)

	equal(t, []uint32{1, 2}, c.MigratesFrom())
	equal(t, []uint32{2}, c.MigratesTo())
}

func TestCodecMissingStepIsClear(t *testing.T) {
	c := codec()
	_, err := c.Migrate([]byte(`{}`), 3, 1)
	if !errors.Is(err, sdk.ErrNoMigration) {
		t.Fatalf("want ErrNoMigration, got %v", err)
	}
	var me *sdk.MigrationError
	if !errors.As(err, &me) {
		t.Fatalf("want a *MigrationError, got %T", err)
	}
	equal(t, uint32(2), me.StepFrom)
	equal(t, uint32(1), me.StepTo)
	equal(t, "cannot migrate state from schema 3 to 1: no migration registered for step 2 -> 1", err.Error())

	_, err = c.Decode(4, []byte(`{}`))
	if !errors.Is(err, sdk.ErrNoMigration) {
		t.Fatalf("want ErrNoMigration, got %v", err)
	}
}

func TestCodecStepErrorNamesTheStep(t *testing.T) {
	c := sdk.JSONCodec[v2](2).Up(1, func([]byte) ([]byte, error) { return nil, errors.New("nope") })
	_, err := c.Decode(1, []byte(`{}`))
	if err == nil || err.Error() != "migrate state from schema 1 to 2: step 1 -> 2: nope" {
		t.Fatalf("got %v", err)
	}
}

func TestCustomEncoding(t *testing.T) {
	c := sdk.NewCodec[string](1, func(s string) ([]byte, error) { return []byte(s), nil }, func(b []byte) (string, error) { return string(b), nil })
	equal(t, "raw", must(c.Decode(1, []byte("raw")))(t))
}
