// Command demo runs the ping-pong demonstration end to end and proves it:
// it starts a real graft core on a fresh store, starts the exchange, rebuilds
// pong as v2 into the folder the core watches while balls are in flight,
// keeps exchanging, then stops the balls and checks that every bounce was
// answered exactly once. Beside the balls, a reminder of examples/reminders
// (a virtual actor, made by its first message) ticks on a durable timer
// that re-arms itself, until a timer scheduled from outside stops it.
// scripts/demo.sh builds it and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/mailbox"
)

func main() {
	var o options
	flag.StringVar(&o.graft, "graft", "", "path of the built graft binary")
	flag.StringVar(&o.work, "work", "", "fresh folder for the store, socket, config and core log")
	flag.StringVar(&o.root, "root", ".", "the repository (for examples/pingpong/bin and scripts/build-plugins.sh)")
	flag.StringVar(&o.reminder, "reminder", "", "path of the built reminder plugin (examples/reminders/reminder); empty: no reminder")
	flag.IntVar(&o.balls, "balls", 4, "balls in flight per ping actor")
	flag.DurationVar(&o.before, "before", 3*time.Second, "exchange time before the rebuild")
	flag.DurationVar(&o.after, "after", 3*time.Second, "exchange time after the upgrade")
	flag.StringVar(&o.etcd, "etcd", "", "etcd client URLs, comma-separated: run the demo on a cluster of --cores cores over etcd")
	flag.IntVar(&o.cores, "cores", 3, "cores of the cluster (with --etcd)")
	flag.StringVar(&o.lease, "lease", "3s", "the cluster's lease_ttl (with --etcd)")
	flag.Parse()
	if o.graft == "" || o.work == "" {
		fmt.Fprintln(os.Stderr, "usage: demo --graft PATH --work DIR [--root REPO] (scripts/demo.sh runs it for you)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runDemo := run
	if o.etcd != "" {
		runDemo = runCluster
	}
	if err := runDemo(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	graft, work, root string
	reminder          string
	balls             int
	before, after     time.Duration
	etcd, lease       string
	cores             int
}

// pingStats is the part of a ping actor's "stats" reply the demo reads.
type pingStats struct {
	Balls map[string]struct {
		Sent int `json:"sent"`
		Got  int `json:"got"`
	} `json:"balls"`
	Pongs      int            `json:"pongs"`
	ByTag      map[string]int `json:"by_tag"`
	Duplicated int            `json:"duplicated"`
	Lost       int            `json:"lost"`
	sent       int            // pings sent, summed over balls (pingTotals)
}

// pongStats is pong's "stats" reply.
type pongStats struct {
	Version string `json:"version"`
	Count   int    `json:"count"`
}

var pings = []string{"ping1", "ping2"}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "examples", "pingpong", "bin")
	cfg := filepath.Join(o.work, "graft.yaml")
	body := fmt.Sprintf(`store: {path: %s, durability: sync}
control: {dir: %s}
behaviours:
  ping: {binary: %s}
  pong: {binary: %s}
%sactors:
  - {name: pong, behaviour: pong}
  - {name: ping1, behaviour: ping, requires: [pong]}
  - {name: ping2, behaviour: ping, requires: [pong]}
`, filepath.Join(o.work, "data"), filepath.Join(o.work, "run"), filepath.Join(bin, "ping"), filepath.Join(bin, "pong"), reminderConfig(o.reminder))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write the demo config: %w", err)
	}

	logPath := filepath.Join(o.work, "core.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	core := exec.Command(o.graft, "run", "--config", cfg)
	core.Stdout, core.Stderr = logFile, logFile
	if err := core.Start(); err != nil {
		return fmt.Errorf("start the graft core: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- core.Wait() }()
	defer stopCore(core, exited)
	say("started the graft core (pid %d) on a fresh store in %s; its log: %s", core.Process.Pid, o.work, logPath)

	c := control.NewClient(filepath.Join(o.work, "run", "graft.sock"))
	defer c.Close()
	call := func(actor, text string) ([]byte, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		r, err := c.Call(cctx, actor, control.CallRequest{SendRequest: control.SendRequest{Text: text}})
		return r.Reply, err
	}
	if err := waitFor(ctx, exited, 30*time.Second, "the core to answer", func() bool {
		_, err := call("pong", "stats")
		return err == nil
	}); err != nil {
		return err
	}
	before, err := pong(call)
	if err != nil {
		return err
	}
	if o.reminder != "" {
		if err := startReminder(call); err != nil {
			return err
		}
	}
	say("pong is at version %s; %d ping actors each start %d balls", before.Version, len(pings), o.balls)
	for _, p := range pings {
		if _, err := c.Send(ctx, p, control.SendRequest{Text: fmt.Sprintf("start %d", o.balls)}); err != nil {
			return fmt.Errorf("start the balls of %s: %w", p, err)
		}
	}
	if err := exchange(ctx, exited, call, o.before); err != nil {
		return err
	}

	say("rebuilding pong as v2 into %s (the core watches it)", bin)
	build := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-plugins.sh"), "v2")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("rebuild pong v2: %w\n%s", err, out)
	}
	written := time.Now()
	var rec mailbox.UpgradeRecord
	if err := waitFor(ctx, exited, 60*time.Second, "the upgrade", func() bool {
		h, err := c.History(ctx)
		if err != nil || len(h) == 0 {
			return false
		}
		rec = control.StoreRecord(h[len(h)-1])
		return true
	}); err != nil {
		return err
	}
	report(rec, written)
	if rec.Outcome != "completed" {
		return fmt.Errorf("the upgrade did not complete: %s", rec.Error)
	}
	if err := exchange(ctx, exited, call, o.after); err != nil {
		return err
	}

	say("stopping the balls and letting those in flight land")
	for _, p := range pings {
		if _, err := c.Send(ctx, p, control.SendRequest{Text: "stop"}); err != nil {
			return fmt.Errorf("stop the balls of %s: %w", p, err)
		}
	}
	var total pingStats
	if err := waitFor(ctx, exited, 30*time.Second, "every ball to land", func() bool {
		t, landed, err := pingTotals(call)
		total = t
		return err == nil && landed
	}); err != nil {
		return err
	}
	after, err := pong(call)
	if err != nil {
		return err
	}
	ticks := -1 // no reminder
	if o.reminder != "" {
		r, err := stopReminder(ctx, exited, c, call)
		if err != nil {
			return err
		}
		ticks = r.Count
	}
	return summary(total, before, after, rec, ticks)
}

// reminderConfig is the config's line for the reminder behaviour (virtual:
// it owns every name reminder/KEY), or "" when the demo runs none.
func reminderConfig(binary string) string {
	if binary == "" {
		return ""
	}
	return fmt.Sprintf("  reminder: {binary: %s, virtual: true}\n", binary)
}

// exchange lets the balls fly for d, printing a progress line a second.
func exchange(ctx context.Context, exited <-chan error, call func(string, string) ([]byte, error), d time.Duration) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("the core exited: %w", err)
		case <-time.After(time.Second):
		}
		t, _, err := pingTotals(call)
		if err != nil {
			return err
		}
		say("  exchanging: %d pongs received (%s)", t.Pongs, tags(t.ByTag))
	}
	return nil
}

// pingTotals adds up the ping actors' stats; landed says every ball's last
// ping has been answered.
func pingTotals(call func(string, string) ([]byte, error)) (pingStats, bool, error) {
	total := pingStats{ByTag: map[string]int{}}
	landed := true
	for _, p := range pings {
		raw, err := call(p, "stats")
		if err != nil {
			return total, false, fmt.Errorf("read the stats of %s: %w", p, err)
		}
		var s pingStats
		if err := json.Unmarshal(raw, &s); err != nil {
			return total, false, fmt.Errorf("stats of %s: %w", p, err)
		}
		total.Pongs += s.Pongs
		total.Duplicated += s.Duplicated
		total.Lost += s.Lost
		for k, v := range s.ByTag {
			total.ByTag[k] += v
		}
		for _, b := range s.Balls {
			total.sent += b.Sent
			if b.Sent != b.Got {
				landed = false
			}
		}
	}
	return total, landed, nil
}

func pong(call func(string, string) ([]byte, error)) (pongStats, error) {
	raw, err := call("pong", "stats")
	if err != nil {
		return pongStats{}, fmt.Errorf("read pong's stats: %w", err)
	}
	var s pongStats
	if err := json.Unmarshal(raw, &s); err != nil {
		return pongStats{}, fmt.Errorf("pong's stats: %w", err)
	}
	return s, nil
}

// report prints the upgrade as the history recorded it, step by step.
func report(rec mailbox.UpgradeRecord, written time.Time) {
	say("upgrade of %s: %s -> %s, %s", rec.Behaviour, rec.From, rec.To, rec.Outcome)
	for _, st := range rec.Steps {
		what := st.Step
		if st.Actor != "" {
			what = st.Actor + " " + st.Step
		}
		say("  step %-12s %8.2f ms", what, float64(st.Duration.Microseconds())/1000)
	}
	say("  binary in place to upgrade done: %d ms", rec.Ended.Sub(written).Milliseconds())
}

// summary prints the figures and fails on anything lost, duplicated or not
// upgraded; ticks is the reminder's count (-1: no reminder ran).
func summary(t pingStats, before, after pongStats, rec mailbox.UpgradeRecord, ticks int) error {
	var pause time.Duration
	for _, st := range rec.Steps {
		if st.Step == "pause" {
			pause = max(pause, st.Duration)
		}
	}
	lost := t.Lost + t.sent - t.Pongs
	fmt.Println()
	fmt.Printf("pings sent        %d\n", t.sent)
	fmt.Printf("pongs received    %d (%s)\n", t.Pongs, tags(t.ByTag))
	fmt.Printf("lost              %d\n", lost)
	fmt.Printf("duplicated        %d\n", t.Duplicated)
	fmt.Printf("pong version      %s -> %s\n", before.Version, after.Version)
	fmt.Printf("upgrade pause     %.2f ms (pong held between two commits)\n", float64(pause.Microseconds())/1000)
	fmt.Printf("state carried     pong's count went on from %d (before) to %d, one per ping answered\n", before.Count, after.Count)
	if ticks >= 0 {
		fmt.Printf("reminder ticks    %d (a durable timer re-armed on each tick, stopped by send --after 1s)\n", ticks)
	}
	var errs []error
	if lost != 0 {
		errs = append(errs, fmt.Errorf("%d bounces lost (ping sent %d, received %d)", lost, t.sent, t.Pongs))
	}
	if after.Count != t.sent {
		errs = append(errs, fmt.Errorf("pong's count %d is not the %d pings sent: its state was not carried over", after.Count, t.sent))
	}
	if t.Duplicated != 0 {
		errs = append(errs, fmt.Errorf("%d replies duplicated", t.Duplicated))
	}
	if before.Version == after.Version || t.ByTag["pong/v2"] == 0 {
		errs = append(errs, errors.New("pong was not upgraded"))
	}
	if ticks == 0 {
		errs = append(errs, fmt.Errorf("%s never ticked: its timer did not fire", reminder))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println("\nok: nothing lost, nothing duplicated, pong upgraded mid-stream")
	return nil
}

func tags(by map[string]int) string {
	var parts []string
	for _, k := range []string{"pong", "pong/v2"} {
		parts = append(parts, fmt.Sprintf("%s: %d", k, by[k]))
	}
	return strings.Join(parts, ", ")
}

// waitFor polls cond until it holds, the core exits or the deadline passes.
func waitFor(ctx context.Context, exited <-chan error, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", within, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("the core exited while waiting for %s: %w (see its log)", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// stopCore stops the core gracefully (SIGTERM), and by force after 10 s.
func stopCore(core *exec.Cmd, exited <-chan error) {
	if core.ProcessState != nil {
		return
	}
	_ = core.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		_ = err // how it exited does not matter once it has stopped
		say("stopped the graft core")
	case <-time.After(10 * time.Second):
		_ = core.Process.Kill()
		if err := <-exited; err != nil {
			say("the core exited: %v", err)
		}
		say("killed the graft core (it did not stop within 10 s)")
	}
}
