package config

import (
	"os"
	"strings"
	"testing"

	"github.com/graft-host/graft/mailbox"
)

// FuzzDecode feeds the decoder and the validator any bytes: they must
// answer with problems, never panic, and a config they accept must keep
// the promises validation makes to the core. The seed corpus in
// testdata/fuzz/FuzzDecode holds the shapes that broke YAML decoders
// before (aliases, merge keys, tags, deep nesting, huge numbers, garbage);
// run `go test -fuzz FuzzDecode ./config` to look for
// more.
func FuzzDecode(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "/srv/graft/graft.yaml"
		d := &decoder{base: "/srv/graft"}
		cfg := d.decode(data)
		if cfg == nil {
			t.Fatal("decode returned no config")
		}
		cfg.File, cfg.lines = file, d.lines
		d.validate(cfg)
		for _, p := range d.problems {
			if p.Message == "" || p.Line < 0 {
				t.Errorf("a problem without a message or with line %d: %+v", p.Line, p)
			}
		}
		if len(d.problems) > 0 {
			if msg := (&Error{File: file, Problems: d.problems}).Error(); !strings.Contains(msg, file) {
				t.Errorf("the error does not name the file: %s", msg)
			}
			return
		}
		checkAccepted(t, cfg)
	})
}

// checkAccepted fails t if an accepted config breaks what validation
// promises: a store, valid unique actor names, known behaviours and
// requirements, usable limits.
func checkAccepted(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.Store.Path == "" {
		t.Error("accepted without a store path")
	}
	if cfg.Control.Socket == "" {
		t.Error("accepted without a control socket")
	}
	names := map[string]bool{}
	for _, a := range cfg.Actors {
		if err := mailbox.CheckActorName(a.Name); err != nil {
			t.Errorf("accepted actor name %q: %v", a.Name, err)
		}
		if names[a.Name] {
			t.Errorf("accepted actor %q twice", a.Name)
		}
		names[a.Name] = true
		if _, ok := cfg.Behaviours[a.Behaviour]; !ok {
			t.Errorf("accepted actor %q of unknown behaviour %q", a.Name, a.Behaviour)
		}
	}
	for _, a := range cfg.Actors {
		for _, r := range a.Requires {
			if !names[r] {
				t.Errorf("accepted actor %q requiring unknown %q", a.Name, r)
			}
		}
	}
	l := cfg.Limits
	if l.MaxMessageSize <= 0 || l.MaxStateSize <= 0 || l.MaxBatchBytes <= 0 || l.MaxAttempts < 1 || l.BatchSize < 1 {
		t.Errorf("accepted unusable limits %+v", l)
	}
	for name, b := range cfg.Behaviours {
		if b.Binary == "" {
			t.Errorf("accepted behaviour %q without a binary", name)
		}
		if b.StartTimeout < 0 || b.HandleTimeout < 0 || b.StopTimeout < 0 {
			t.Errorf("accepted behaviour %q with a negative timeout: %+v", name, b)
		}
	}
}
