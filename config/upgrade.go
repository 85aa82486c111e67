package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Upgrade is the `upgrade` section: how every upgrade moves actors.
type Upgrade struct {
	// GroupSize is how many actors one store transaction moves (0: the
	// upgrade package's default).
	GroupSize int
	// MaxPause is each actor's pause budget: an actor whose drain,
	// migration and commit would pause it longer is left on the old
	// version, and the upgrade reports it (0: the upgrade package's
	// default, upgrade.DefaultMaxPause, 50 ms).
	MaxPause time.Duration
	// OverBudget is what an upgrade does with those actors: "retry" them
	// once the others moved (default), or "stop" there.
	OverBudget string
}

// UpgradePolicy is a behaviour's `upgrade` settings: the canary that an
// upgrade of it starts with when none is asked for (a watched rebuild,
// `graft upgrade` without --canary). The zero policy (no canary) moves
// every actor, in groups.
type UpgradePolicy struct {
	// CanaryShare (0 < share < 1) or CanaryActors is the canary group.
	CanaryShare  float64
	CanaryActors []string
	// Bake is how long both versions serve before the decision.
	Bake time.Duration
	// FailureRateIncrease (a fraction: 0.01 is one percentage point),
	// P99Ratio and MinMessages are the health gates; 0 is the upgrade
	// package's default.
	FailureRateIncrease float64
	P99Ratio            float64
	MinMessages         int
	// Inconclusive is what a bake on too little traffic to judge ends in:
	// "promote", "rollback" or "hold" ("" is the upgrade package's
	// default, promote).
	Inconclusive string
}

// HasCanary says whether the policy starts upgrades with a canary.
func (p UpgradePolicy) HasCanary() bool { return p.CanaryShare > 0 || len(p.CanaryActors) > 0 }

// upgradeSection reads the top-level `upgrade` section.
func (d *decoder) upgradeSection(cfg *Config, n *yaml.Node, key string) {
	u := &cfg.Upgrade
	d.mapping(n, key,
		field{"group_size", d.count(&u.GroupSize, 1)},
		field{"max_pause", d.duration(&u.MaxPause)},
		field{"over_budget", oneOf(d, &u.OverBudget, map[string]string{"retry": "retry", "stop": "stop"})},
	)
}

// upgradePolicy reads a behaviour's `upgrade` settings.
func (d *decoder) upgradePolicy(cfg *Config, behaviour string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		var p UpgradePolicy
		d.mapping(n, key,
			field{"canary", d.canary(&p)},
			field{"bake", d.duration(&p.Bake)},
			field{"failure_rate_increase", d.fraction(&p.FailureRateIncrease)},
			field{"p99_ratio", d.ratio(&p.P99Ratio)},
			field{"min_messages", d.count(&p.MinMessages, 1)},
			field{"inconclusive", oneOf(d, &p.Inconclusive, map[string]string{"promote": "promote", "rollback": "rollback", "hold": "hold"})},
		)
		if cfg.UpgradePolicies == nil {
			cfg.UpgradePolicies = map[string]UpgradePolicy{}
		}
		cfg.UpgradePolicies[behaviour] = p
	}
}

// canary reads a canary group: a share ("10%") or a list of actor names.
func (d *decoder) canary(p *UpgradePolicy) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if n.Kind == yaml.SequenceNode {
			d.strings(&p.CanaryActors)(n, key)
			if len(p.CanaryActors) == 0 {
				d.add(n, key, "an empty list of canary actors: name at least one, or give a share such as 10%%")
			}
			return
		}
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, ok := percent(s)
		if !ok || v <= 0 || v >= 1 {
			d.add(n, key, "%q is not a canary: give a share above 0%% and below 100%%, such as 10%%, or a list of actor names, such as [a, b]", s)
			return
		}
		p.CanaryShare = v
	}
}

// fraction reads a share of one: "1%" or 0.01, from 0 to 1.
func (d *decoder) fraction(dst *float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, ok := percent(s)
		if !ok || v <= 0 || v > 1 {
			d.add(n, key, "%q is not a share: give a percentage above 0%% and at most 100%%, such as 1%%, or a fraction such as 0.01", s)
			return
		}
		*dst = v
	}
}

// ratio reads a factor of at least 1, such as 1.5.
func (d *decoder) ratio(dst *float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 1 {
			d.add(n, key, "%q is not a ratio: give a number of at least 1, such as 1.5 (the canary's p99 may be 1.5 times the old version's)", s)
			return
		}
		*dst = v
	}
}

// percent reads "10%" as 0.1 and "0.1" as 0.1.
func percent(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	scale := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = strings.TrimSpace(p), 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v / scale, true
}

// maxVerifyWindow bounds verify_window: the kept messages are written
// again with each commit of the actor.
const maxVerifyWindow = 1000

// validateUpgrades checks what the upgrade settings need together: a
// canary needs a bake and a bake a canary; gates need a canary.
func (d *decoder) validateUpgrades(cfg *Config) {
	for name, b := range cfg.Behaviours {
		if key := "behaviours." + name + ".verify_window"; b.VerifyWindow > maxVerifyWindow {
			d.problems = append(d.problems, Problem{Line: d.lines[key], Key: key,
				Message: fmt.Sprintf("%d messages is over the %d a dry run replays per actor: every commit rewrites the window, so keep it small (16 is plenty to compare versions)", b.VerifyWindow, maxVerifyWindow)})
		}
	}
	for name := range cfg.UpgradePolicies {
		key := "behaviours." + name + ".upgrade"
		if _, ok := cfg.Behaviours[name]; !ok {
			continue
		}
		set := func(k string) bool { _, ok := d.lines[key+"."+k]; return ok }
		switch { // a key given but invalid has its own problem already
		case set("canary") && !set("bake"):
			d.problems = append(d.problems, Problem{Line: d.lines[key+".canary"], Key: key + ".bake",
				Message: "missing: a canary needs a bake time, how long both versions serve before the decision, e.g. bake: 60s"})
		case !set("canary") && (set("bake") || set("failure_rate_increase") || set("p99_ratio") || set("min_messages") || set("inconclusive")):
			d.problems = append(d.problems, Problem{Line: d.lines[key], Key: key + ".canary",
				Message: "missing: bake and the health gates apply to a canary; name one, e.g. canary: 10%, or remove them"})
		}
	}
}
