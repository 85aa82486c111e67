package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// Defaults is the config a file naming only store.path and control.dir
// gives, for a program that builds its config in Go instead of YAML: add
// Behaviours and Actors, change what else it needs, then Check it
// (host.New does). Both paths must be absolute: a config built in Go has
// no file to resolve them against.
func Defaults(storePath, controlDir string) *Config {
	c := defaults()
	c.Store.Path = storePath
	c.Control = ControlAt(controlDir)
	return c
}

// Check validates a config as Load validates a file, for a config built
// in Go (see Defaults) or changed after loading: it returns *Error listing
// every problem, each named by its key.
func (c *Config) Check() error { return c.CheckFor(nil) }

// CheckFor is Check with LoadFor's cached: a behaviour whose binary does
// not exist is not a problem when cached(c, behaviour) says the core
// already holds the version its actors run.
func (c *Config) CheckFor(cached func(cfg *Config, behaviour string) bool) error {
	d := &decoder{lines: c.lines, actorAt: c.actorAt}
	if d.lines == nil {
		d.lines = map[string]int{}
	}
	d.checkValues(c)
	d.validate(c)
	problems := append(d.problems, c.checkFiles(cached)...)
	if len(problems) == 0 {
		return nil
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	return &Error{File: c.File, Problems: problems}
}

// checkValues checks what decoding a file checks as it reads each value,
// so that a config built in Go meets the same rules: absolute paths,
// known words, positive counts and timeouts, valid environments and
// limits. A decoded file passes it by construction.
func (d *decoder) checkValues(c *Config) {
	problem := func(key, format string, args ...any) {
		d.problems = append(d.problems, Problem{Line: d.lines[key], Key: key, Message: fmt.Sprintf(format, args...)})
	}
	absolute := func(key, path string) {
		if path != "" && !filepath.IsAbs(path) {
			problem(key, "%q is relative: a config built in Go has no file to resolve it against; give an absolute path", path)
		}
	}
	absolute("store.path", c.Store.Path)
	if c.Store.Durability != mailbox.DurabilitySync && c.Store.Durability != mailbox.DurabilityRelaxed {
		problem("store.durability", "%v is neither sync nor relaxed", c.Store.Durability)
	}
	switch {
	case c.Control.Dir == "":
		problem("control.dir", "missing: name the folder of the control socket (config.ControlAt builds the section)")
	case c.Control != ControlAt(c.Control.Dir):
		problem("control", "socket %q and plugin socket folder %q must be those ControlAt(%q) derives, where tools look for them",
			c.Control.Socket, c.Control.PluginSockets, c.Control.Dir)
	}
	absolute("control.dir", c.Control.Dir)
	if c.Limits.MaxAttempts < 1 {
		problem("limits.max_attempts", "must be at least 1, got %d", c.Limits.MaxAttempts)
	}
	if c.Limits.BatchSize < 1 {
		problem("limits.batch_size", "must be at least 1, got %d", c.Limits.BatchSize)
	}
	names := make([]string, 0, len(c.Behaviours))
	for name := range c.Behaviours {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b, key := c.Behaviours[name], "behaviours."+name
		if name == "" {
			problem(key, "empty behaviour name")
		}
		absolute(key+".binary", b.Binary)
		for _, t := range []struct {
			key string
			neg bool
		}{{"start_timeout", b.StartTimeout < 0}, {"call_timeout", b.HandleTimeout < 0}, {"drain_timeout", b.StopTimeout < 0}} {
			if t.neg {
				problem(key+"."+t.key, "must be positive (or zero for the default)")
			}
		}
		seen := map[string]bool{}
		for i, e := range b.Env {
			k, _, _ := strings.Cut(e, "=")
			if err := dynamic.CheckEnv(e); err != nil {
				problem(fmt.Sprintf("%s.env[%d]", key, i), "%v", err)
			} else if seen[k] {
				problem(fmt.Sprintf("%s.env[%d]", key, i), "%s is set twice", k)
			}
			seen[k] = true
		}
		r := b.Resources
		if r.Memory != 0 && (r.Memory < minMemory || r.Memory > maxMemory) {
			problem(key+".memory", "%d bytes is out of range: give at least 16MiB (a plugin needs about 20MiB to start), or 0 for no limit", r.Memory)
		}
		if r.Pids != 0 && (r.Pids < minPids || r.Pids > maxPids) {
			problem(key+".pids", "%d is out of range: give %d to %d, or 0 for no limit", r.Pids, minPids, maxPids)
		}
		if r.CPUWeight != 0 && (r.CPUWeight < 1 || r.CPUWeight > 10000) {
			problem(key+".cpu_weight", "%d is out of range: give 1 to 10000, or 0 for the default share", r.CPUWeight)
		}
	}
}
