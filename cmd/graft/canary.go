package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-host/graft/core/control/api"
)

// decide hands --promote or --abort to behaviour's baking canary.
func decide(cmd *cobra.Command, e *env, cf *clientFlags, behaviour string, f upgradeFlags) error {
	c, ctx, done, err := cf.client(cmd, e, 10*time.Second)
	if err != nil {
		return err
	}
	defer done()
	var d api.DecisionResponse
	if f.promote {
		d, err = c.Promote(ctx, behaviour)
	} else {
		d, err = c.Abort(ctx, behaviour)
	}
	if err != nil {
		return err
	}
	if f.asJSON {
		return printJSON(e.stdout, d)
	}
	what := "the rest of its actors are moving to the new version"
	if !f.promote {
		what = "its canary is moving back to the old version"
	}
	fmt.Fprintf(e.stdout, "%s of %s: the bake ends now; %s (`graft history` shows the outcome)\n", d.Decision, behaviour, what)
	return nil
}

// followEvery is how often a running upgrade's phase is asked for.
const followEvery = 500 * time.Millisecond

// followUpgrade tells w of each phase the upgrade of behaviour goes
// through, until the returned stop is called (which waits for the last
// line). It asks the core every followEvery; a failed ask is skipped.
func followUpgrade(ctx context.Context, c *api.Client, w io.Writer, behaviour string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(followEvery)
		defer t.Stop()
		last := ""
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			ups, err := c.Upgrades(ctx)
			if err != nil {
				continue
			}
			for _, u := range ups {
				if u.Behaviour != behaviour || u.Canary == "" {
					continue
				}
				if line := phaseLine(u); line != last && ctx.Err() == nil {
					fmt.Fprintln(w, line)
					last = line
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// phaseLine is a canary's phase as one line. The bake's time left is
// rounded (to 5 s under a minute, 30 s under ten, then minutes), so that
// a line is printed when it changes, not at every ask.
func phaseLine(u api.UpgradeProgress) string {
	group := fmt.Sprintf("canary %s (%s)", u.Canary, list(u.Group, 5))
	switch u.Phase {
	case "baking":
		left := time.Duration(u.BakeLeftSeconds * float64(time.Second))
		switch {
		case left < time.Minute:
			left = left.Round(5 * time.Second)
		case left < 10*time.Minute:
			left = left.Round(30 * time.Second)
		default:
			left = left.Round(time.Minute)
		}
		if u.Verdict != "" { // the window ended on too little traffic, and the bake holds
			return fmt.Sprintf("%s: %s on %s, baking beside %s past its window: %s", u.Behaviour, group, u.To, u.From, u.Verdict)
		}
		return fmt.Sprintf("%s: %s on %s, baking beside %s, about %s left", u.Behaviour, group, u.To, u.From, left)
	case "promoting", "rolling back":
		return fmt.Sprintf("%s: %s: %s: %s", u.Behaviour, group, u.Phase, u.Verdict)
	}
	return fmt.Sprintf("%s: %s: moving to %s", u.Behaviour, group, u.To)
}

// list is names joined, the first most of them and a count of the rest.
func list(names []string, most int) string {
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// parseShare reads "1%" as 0.01 (and "0.01" as itself): a share of one.
func parseShare(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(p), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v/scale > 1 {
		return 0, errors.New("give a percentage from 0% to 100%, such as 1%")
	}
	return v / scale, nil
}
