package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/graft-host/graft/dynamic"
)

// Limits of a behaviour's module processes (behaviours.NAME.memory, pids,
// cpu_weight), enforced by each module's cgroup; see dynamic.Resources.
const (
	minMemory = 16 << 20 // a Go plugin needs about 20 MiB to start
	maxMemory = 1 << 50
	minPids   = 16 // tasks include threads: a Go plugin has about ten
	maxPids   = 1 << 22
)

var memoryRE = regexp.MustCompile(`^(\d+)\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)?$`)

// memory reads a memory limit: bytes, or a unit as systemd's MemoryMax
// takes it (K, M, G, T are binary, like KiB...; KB, MB... decimal).
func (d *decoder) memory(dst *int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		m := memoryRE.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			d.add(n, key, "%q is not a memory size: write bytes or a unit, e.g. 256MiB, 2GiB, 512M", s)
			return
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "KB": 1e3, "M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
			"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9, "T": 1 << 40, "TiB": 1 << 40, "TB": 1e12}[m[2]]
		switch {
		case err != nil || v > maxMemory/mult:
			d.add(n, key, "%q is too large", s)
		case v*mult < minMemory:
			d.add(n, key, "%q is too small: a plugin needs about 20MiB to start; give at least 16MiB", s)
		default:
			*dst = v * mult
		}
	}
}

// between reads a whole number in [lo, hi]; why explains the range.
func (d *decoder) between(dst *int64, lo, hi int64, why string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			d.add(n, key, "%q is not a whole number", s)
		case v < lo || v > hi:
			d.add(n, key, "%d is out of range: give %d to %d (%s)", v, lo, hi, why)
		default:
			*dst = v
		}
	}
}

// env reads a behaviour's environment: KEY=value sets a variable, a bare
// KEY passes the core's own value on. Nothing else of the core's
// environment reaches a plugin.
func (d *decoder) env(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		var list []string
		d.strings(&list)(n, key)
		seen := map[string]int{}
		for i, e := range list {
			k, _, _ := strings.Cut(e, "=")
			at := n
			if i < len(n.Content) {
				at = n.Content[i]
			}
			ekey := fmt.Sprintf("%s[%d]", key, i)
			if err := dynamic.CheckEnv(e); err != nil {
				d.add(at, ekey, "%v", err)
				continue
			}
			if j, dup := seen[k]; dup {
				d.add(at, ekey, "%s is already set by %s[%d]", k, key, j)
				continue
			}
			seen[k] = i
			*dst = append(*dst, e)
		}
	}
}

// resourceFields are the limit keys of a behaviour.
func (d *decoder) resourceFields(r *dynamic.Resources) []field {
	return []field{
		{"memory", d.memory(&r.Memory)},
		{"pids", d.between(&r.Pids, minPids, maxPids, "tasks, threads included: a Go plugin has about ten")},
		{"cpu_weight", d.between(&r.CPUWeight, 1, 10000, "100 is every other process's share")},
	}
}
