package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/supervisor"
)

// decoder walks the YAML node tree by hand so that every problem keeps its
// line, unknown keys are found wherever they are, and decoding goes on after
// a problem to find the others.
type decoder struct {
	base     string // folder of the config file
	problems []Problem
	lines    map[string]int // key path -> line, for checks after decoding
	actorAt  []int          // line of each actor entry
}

func (d *decoder) add(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// field is one known key of a mapping and what to do with its value.
type field struct {
	name string
	set  func(v *yaml.Node, key string)
}

// mapping applies fields to the mapping node n (whose key path is key);
// unknown and repeated keys are problems.
func (d *decoder) mapping(n *yaml.Node, key string, fields ...field) {
	if n.Kind != yaml.MappingNode {
		d.add(n, key, "expected a mapping of keys, found %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := join(key, k.Value)
		if first, ok := seen[k.Value]; ok {
			d.add(k, path, "repeated key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if i < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			d.add(k, path, "unknown key (known keys here: %s)", strings.Join(names, ", "))
			continue
		}
		d.lines[path] = v.Line
		fields[i].set(v, path)
	}
}

func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func (d *decoder) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.add(n, key, "expected a value, found %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if s, ok := d.scalar(n, key); ok {
			*dst = s
		}
	}
}

// path reads a file path, resolved against the config file's folder.
func (d *decoder) path(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		if s == "" {
			d.add(n, key, "empty path")
			return
		}
		if !filepath.IsAbs(s) {
			s = filepath.Join(d.base, s)
		}
		*dst = filepath.Clean(s)
	}
}

func (d *decoder) duration(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.add(n, key, "%q is not a duration: write a number with a unit, e.g. 500ms, 10s, 1m", s)
		case v <= 0:
			d.add(n, key, "must be positive, got %s", s)
		default:
			*dst = v
		}
	}
}

// count reads an integer of at least min.
func (d *decoder) count(dst *int, min int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.Atoi(s)
		switch {
		case err != nil:
			d.add(n, key, "%q is not a whole number", s)
		case v < min:
			d.add(n, key, "must be at least %d, got %d", min, v)
		default:
			*dst = v
		}
	}
}

var sizeRE = regexp.MustCompile(`^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$`)

// size reads a byte count: 1048576, 512KiB, 1MiB, 1MB.
func (d *decoder) size(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			d.add(n, key, "%q is not a size: write bytes or a unit, e.g. 65536, 64KiB, 1MiB", s)
			return
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "KiB": 1 << 10, "MB": 1e6, "MiB": 1 << 20, "GB": 1e9, "GiB": 1 << 30}[m[2]]
		const most = 1 << 30
		if err != nil || v <= 0 || v > most/mult || v*mult > most {
			d.add(n, key, "%q is out of range (1 byte to 1GiB)", s)
			return
		}
		*dst = int(v * mult)
	}
}

func (d *decoder) strings(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if n.Kind != yaml.SequenceNode {
			d.add(n, key, "expected a list, e.g. [a, b], found %s", kindName(n))
			return
		}
		for i, e := range n.Content {
			if s, ok := d.scalar(e, fmt.Sprintf("%s[%d]", key, i)); ok {
				*dst = append(*dst, s)
			}
		}
	}
}

// oneOf reads a word from a closed set.
func oneOf[T any](d *decoder, dst *T, choices map[string]T) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, ok := choices[s]
		if !ok {
			names := make([]string, 0, len(choices))
			for k := range choices {
				names = append(names, k)
			}
			slices.Sort(names)
			d.add(n, key, "%q is not one of %s", s, strings.Join(names, ", "))
			return
		}
		*dst = v
	}
}

// decode reads the whole file into a Config, recording problems.
func (d *decoder) decode(data []byte) *Config {
	cfg := defaults()
	d.lines = map[string]int{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.add(nil, "", "not valid YAML: %v", err)
		return cfg
	}
	if len(doc.Content) == 0 {
		d.add(nil, "", "the file is empty: it needs at least store.path")
		return cfg
	}
	root := doc.Content[0]
	controlDir := ""
	maxRestarts := -2 // unset
	d.mapping(root, "",
		field{"store", func(n *yaml.Node, key string) { d.decodeStore(cfg, n, key) }},
		field{"control", func(n *yaml.Node, key string) {
			d.mapping(n, key, field{"dir", d.path(&controlDir)})
		}},
		field{"limits", func(n *yaml.Node, key string) {
			d.mapping(n, key,
				field{"max_message_size", d.size(&cfg.Limits.MaxMessageSize)},
				field{"max_attempts", d.count(&cfg.Limits.MaxAttempts, 1)},
				field{"batch_size", d.count(&cfg.Limits.BatchSize, 1)},
				field{"max_state_size", d.size(&cfg.Limits.MaxStateSize)},
				field{"max_batch_bytes", d.size(&cfg.Limits.MaxBatchBytes)},
			)
		}},
		field{"supervision", func(n *yaml.Node, key string) {
			s := &cfg.Supervision
			d.mapping(n, key,
				field{"strategy", oneOf(d, &s.Strategy, map[string]supervisor.Strategy{
					"one_for_one": supervisor.OneForOne, "one_for_all": supervisor.OneForAll, "rest_for_one": supervisor.RestForOne})},
				field{"max_restarts", d.count(&maxRestarts, 0)},
				field{"period", d.duration(&s.Period)},
				field{"backoff_min", d.duration(&s.BackoffMin)},
				field{"backoff_max", d.duration(&s.BackoffMax)},
			)
		}},
		field{"upgrade", func(n *yaml.Node, key string) { d.upgradeSection(cfg, n, key) }},
		field{"cluster", func(n *yaml.Node, key string) {
			d.mapping(n, key, field{"member", d.str(&cfg.Cluster.Member)}, field{"lease_ttl", d.duration(&cfg.Cluster.LeaseTTL)})
		}},
		field{"behaviours", func(n *yaml.Node, key string) { d.behaviours(cfg, n, key) }},
		field{"actors", func(n *yaml.Node, key string) { d.actors(cfg, n, key) }},
	)
	switch {
	case maxRestarts == 0:
		cfg.Supervision.MaxRestarts = -1 // the supervisor's spelling of "no restart"
	case maxRestarts > 0:
		cfg.Supervision.MaxRestarts = maxRestarts
	}
	if controlDir == "" {
		controlDir = filepath.Join(d.base, "run")
	}
	cfg.Control = ControlAt(controlDir)
	return cfg
}

func (d *decoder) behaviours(cfg *Config, n *yaml.Node, key string) {
	if n.Kind != yaml.MappingNode {
		d.add(n, key, "expected a mapping of behaviour name to settings, found %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, path := k.Value, join(key, k.Value)
		if _, dup := cfg.Behaviours[name]; dup {
			d.add(k, path, "behaviour %q is declared twice", name)
			continue
		}
		if name == "" {
			d.add(k, path, "empty behaviour name")
			continue
		}
		d.lines[path] = k.Line
		var b core.BehaviourConfig
		d.mapping(v, path, append([]field{
			{"binary", d.path(&b.Binary)},
			{"sha256", d.str(&b.SHA256)},
			{"start_timeout", d.duration(&b.StartTimeout)},
			{"call_timeout", d.duration(&b.HandleTimeout)},
			{"drain_timeout", d.duration(&b.StopTimeout)},
			{"env", d.env(&b.Env)}, // see resources.go
			{"virtual", oneOf(d, &b.Virtual, map[string]bool{"true": true, "false": false})},
			{"passivate_after", d.duration(&b.PassivateAfter)},
			{"upgrade", d.upgradePolicy(cfg, name)}, // see upgrade.go
			{"verify_window", d.count(&b.VerifyWindow, 1)},
		}, d.resourceFields(&b.Resources)...)...)
		cfg.Behaviours[name] = b
	}
}

func (d *decoder) actors(cfg *Config, n *yaml.Node, key string) {
	if n.Kind != yaml.SequenceNode {
		d.add(n, key, "expected a list of actors (- name: ..., behaviour: ...), found %s", kindName(n))
		return
	}
	for i, e := range n.Content {
		path := fmt.Sprintf("%s[%d]", key, i)
		var a core.ActorConfig
		d.mapping(e, path,
			field{"name", d.str(&a.Name)},
			field{"behaviour", d.str(&a.Behaviour)},
			field{"requires", d.strings(&a.Requires)},
			field{"restart", oneOf(d, &a.Restart, map[string]supervisor.RestartType{
				"permanent": supervisor.Permanent, "transient": supervisor.Transient, "temporary": supervisor.Temporary})},
			field{"process", oneOf(d, &a.OwnProcess, map[string]bool{"shared": false, "own": true})},
		)
		cfg.Actors = append(cfg.Actors, a)
		d.actorAt = append(d.actorAt, e.Line)
	}
}
