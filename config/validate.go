package config

import (
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// validate checks what decoding alone cannot: required keys, names,
// duplicates, references between actors and behaviours, cycles.
func (d *decoder) validate(cfg *Config) {
	at := func(key string) int { return d.lines[key] }
	problem := func(line int, key, format string, args ...any) {
		d.problems = append(d.problems, Problem{Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	d.checkStore(cfg)
	d.checkCluster(cfg)
	if cfg.Store.Path == "" {
		if _, set := d.lines["store.path"]; !set {
			problem(at("store"), "store.path", "missing: name the folder of the store, e.g. store: {path: ./data}")
		}
	}
	// The core binds a temporary name (SOCKET.tmp) before renaming it in.
	if n := len(cfg.Control.Socket) + len(".tmp"); n > maxSocketPath {
		problem(at("control.dir"), "control.dir", "the socket path %s is %d bytes, over the %d a unix socket allows: choose a shorter folder",
			cfg.Control.Socket, n, maxSocketPath)
	}
	// The transport carries a state plus a batch; keep both under 1 GiB
	// so that their sum fits gRPC's (int32) message size.
	for _, l := range []struct {
		key string
		v   int
	}{{"limits.max_state_size", cfg.Limits.MaxStateSize}, {"limits.max_batch_bytes", cfg.Limits.MaxBatchBytes}, {"limits.max_message_size", cfg.Limits.MaxMessageSize}} {
		if l.v < 1<<10 || l.v > 1<<30 {
			problem(at(l.key), l.key, "%d bytes is out of range: give between 1KiB and 1GiB", l.v)
		}
	}
	s := cfg.Supervision
	if s.BackoffMin > s.BackoffMax {
		problem(at("supervision.backoff_min"), "supervision.backoff_min", "%s is longer than backoff_max %s", s.BackoffMin, s.BackoffMax)
	}
	names := make([]string, 0, len(cfg.Behaviours))
	for name := range cfg.Behaviours {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b, key := cfg.Behaviours[name], "behaviours."+name
		if _, set := d.lines[key+".binary"]; !set && b.Binary == "" {
			problem(at(key), key+".binary", "missing: name the plugin binary of behaviour %q", name)
		}
		if b.SHA256 != "" {
			if raw, err := hex.DecodeString(b.SHA256); err != nil || len(raw) != 32 {
				problem(at(key+".sha256"), key+".sha256", "%q is not a sha256 (64 hex digits)", b.SHA256)
			}
		}
		if b.Virtual && strings.Contains(name, "/") {
			problem(at(key+".virtual"), key+".virtual", "a virtual behaviour owns the actor names %s/KEY, so its name cannot contain \"/\": rename behaviour %q", name, name)
		}
	}
	first := map[string]int{} // actor name -> index
	for i, a := range cfg.Actors {
		key, line := fmt.Sprintf("actors[%d]", i), d.actorLine(i)
		if _, set := d.lines[key+".name"]; !set && a.Name == "" {
			problem(line, key+".name", "missing: every actor needs a unique name")
		} else if err := mailbox.CheckActorName(a.Name); err != nil {
			problem(at(key+".name"), key+".name", "%v", err)
		} else if j, dup := first[a.Name]; dup {
			problem(at(key+".name"), key+".name", "duplicate actor %q (first declared as actors[%d]%s)", a.Name, j, onLine(d.actorLine(j)))
		} else {
			first[a.Name] = i
		}
		if owner := virtualOwner(cfg, a.Name); owner != "" && owner != a.Behaviour {
			problem(at(key+".name"), key+".name", "actor %q is in the namespace of virtual behaviour %q (declared virtual%s, it owns every name %s/KEY) but has behaviour %q: rename the actor, or give it behaviour %q",
				a.Name, owner, onLine(at("behaviours."+owner+".virtual")), owner, a.Behaviour, owner)
		}
		switch _, known := cfg.Behaviours[a.Behaviour]; {
		case a.Behaviour == "" && d.lines[key+".behaviour"] == 0:
			problem(line, key+".behaviour", "missing: say which behaviour drives actor %q", a.Name)
		case !known:
			problem(at(key+".behaviour"), key+".behaviour", "unknown behaviour %q (declared behaviours: %s)", a.Behaviour, orNone(names))
		}
	}
	for i, a := range cfg.Actors {
		key := fmt.Sprintf("actors[%d].requires", i)
		for _, r := range a.Requires {
			if r == a.Name {
				problem(at(key), key, "actor %q requires itself", a.Name)
			} else if _, ok := first[r]; !ok {
				problem(at(key), key, "actor %q requires unknown actor %q", a.Name, r)
			}
		}
	}
	if cycle := requirementCycle(cfg); cycle != nil {
		i := first[cycle[0]]
		key := fmt.Sprintf("actors[%d].requires", i)
		problem(at(key), key, "requirement cycle %s: an actor cannot wait for itself", strings.Join(cycle, " -> "))
	}
	d.validateUpgrades(cfg)
}

// virtualOwner is the virtual behaviour whose namespace (BEHAVIOUR/KEY)
// holds actor name, or "".
func virtualOwner(cfg *Config, name string) string {
	b, key, ok := strings.Cut(name, "/")
	if ok && key != "" && cfg.Behaviours[b].Virtual {
		return b
	}
	return ""
}

// actorLine is the line of actors[i], or 0 in a config built in Go.
func (d *decoder) actorLine(i int) int {
	if i < len(d.actorAt) {
		return d.actorAt[i]
	}
	return 0
}

// onLine is " on line N", or "" when there is no line (a config built in
// Go).
func onLine(line int) string {
	if line == 0 {
		return ""
	}
	return fmt.Sprintf(" on line %d", line)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// requirementCycle returns one cycle among the actors' requirements as the
// path that closes it (a -> b -> a), or nil. Self-requirements are reported
// on their own and left out here.
func requirementCycle(cfg *Config) []string {
	actors := make([]core.ActorConfig, 0, len(cfg.Actors))
	for _, a := range cfg.Actors {
		actors = append(actors, core.ActorConfig{Name: a.Name, Requires: slices.DeleteFunc(slices.Clone(a.Requires), func(r string) bool { return r == a.Name })})
	}
	return core.RequirementCycle(actors)
}

// checkFiles checks the file system: every behaviour's binary exists, is a
// regular file and is executable (a missing one is fine when cached says
// so). It runs after decoding so that a bad binary is reported together
// with every other problem.
func (c *Config) checkFiles(cached func(*Config, string) bool) []Problem {
	var out []Problem
	names := make([]string, 0, len(c.Behaviours))
	for name := range c.Behaviours {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		bin, key := c.Behaviours[name].Binary, "behaviours."+name+".binary"
		if bin == "" {
			continue
		}
		fi, err := os.Stat(bin)
		msg := ""
		switch {
		case os.IsNotExist(err) && cached != nil && cached(c, name):
		case os.IsNotExist(err):
			msg = fmt.Sprintf("%s does not exist: build the plugin (go build -o %s ./path/to/plugin) or fix the path", bin, bin)
		case err != nil:
			msg = fmt.Sprintf("cannot read %s: %v", bin, err)
		case !fi.Mode().IsRegular():
			msg = fmt.Sprintf("%s is not a regular file", bin)
		case fi.Mode().Perm()&0o111 == 0:
			msg = fmt.Sprintf("%s is not executable: chmod +x it", bin)
		}
		if msg != "" {
			out = append(out, Problem{Line: c.lines[key], Key: key, Message: msg})
		}
	}
	return out
}
