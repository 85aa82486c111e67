package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// Options configure a run.
type Options struct {
	// Seed drives every random choice of the fault schedule.
	Seed int64
	// Events is how many faults are injected.
	Events int
	// MeanGap is the mean time between two faults (default 1.5s).
	MeanGap time.Duration
	// KVActors is how many actors of the upgradable behaviour run (default 4).
	KVActors int
	// SendersPerActor is how many load goroutines send to each of them
	// (default 2), each in its own order.
	SendersPerActor int
	// Callers is how many goroutines call the register (default 3).
	Callers int
	// Rate is the load's pace: sends and calls per second in all
	// (default 200).
	Rate int
	// Keep keeps the run's folder (config, store, core.log) even when the
	// run passes; a failing run always keeps it.
	Keep bool
	// Progress receives a progress line every few seconds (nil: none).
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if o.MeanGap <= 0 {
		o.MeanGap = 1500 * time.Millisecond
	}
	if o.KVActors <= 0 {
		o.KVActors = 4
	}
	if o.SendersPerActor <= 0 {
		o.SendersPerActor = 2
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Callers <= 0 {
		o.Callers = 3
	}
	return o
}

// Result is the outcome of a run.
type Result struct {
	Report Report
	// Dir is the run's folder, if it was kept.
	Dir string
	// Summary is the one-line summary.
	Summary string
}

// counters are the fault tallies shown on the progress line.
type counters struct {
	coreStarts, coreKills, moduleKills, moduleStops atomic.Int64
	upgrades, rollbacks, sourceWrites, poison       atomic.Int64
	upgradeFailures, events, canaries               atomic.Int64
	timers, cancels, spawns, destroys, timerKills   atomic.Int64
}

// Runner is one chaos run: its folder, the core child process, the load
// and the history.
type Runner struct {
	opts       Options
	dir        string
	graftBin   string
	configPath string
	storeDir   string
	runDir     string
	kvSource   string // the watched, configured binary of "ckv"
	versions   map[string]string
	actors     []string // every configured actor: kv actors, "reg", then tmActors
	kvActors   []string
	tmActors   []string // the configured actors of behaviour "ctm"
	client     *control.Client
	pick       func() *control.Client // a cluster run's choice of member (cluster.go); nil: client
	gate       *gate
	hist       *History
	tokens     chan struct{} // the load's pace
	stats      counters
	canary     canaryState // faults held back while a canary runs (canary.go)

	mu      sync.Mutex
	core    *coreProc
	leaks   []string
	stopped map[int]procInfo // module processes the harness SIGSTOPped
	notes   []string         // non-fatal observations, printed on failure
	// seenSockets are leftover socket files already reported.
	seenSockets map[string]bool
	spawnN      int      // spawned actors named so far (sp-1, sp-2, ...)
	live        []string // spawned actors ready to be destroyed
}

// leak records a leaked process, socket or descriptor.
func (r *Runner) leak(format string, args ...any) {
	r.mu.Lock()
	r.leaks = append(r.leaks, strings.TrimSpace(fmt.Sprintf(format, args...)))
	r.mu.Unlock()
}

// note records something worth knowing if the run fails.
func (r *Runner) note(format string, args ...any) {
	r.mu.Lock()
	if len(r.notes) < 200 {
		r.notes = append(r.notes, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// Run builds the graft binary and the test plugins, runs the core under
// load and faults, stops it, and checks the history. The error is for
// harness failures (a build, a core that never starts); violations of the
// guarantees are in the Report.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts = opts.withDefaults()
	dir, err := os.MkdirTemp("", "chaos")
	if err != nil {
		return Result{}, fmt.Errorf("make the run's folder: %w", err)
	}
	dir, _ = filepath.EvalSymlinks(dir)
	r := &Runner{opts: opts, dir: dir, gate: newGate(), hist: NewHistory(), stopped: map[int]procInfo{}, seenSockets: map[string]bool{}}
	res, err := r.run(ctx)
	res.Dir = dir
	if err != nil || !res.Report.OK() || opts.Keep {
		return res, err
	}
	res.Dir = ""
	return res, os.RemoveAll(dir)
}

func (r *Runner) run(ctx context.Context) (Result, error) {
	if err := r.setup(); err != nil {
		return Result{}, err
	}
	defer r.client.Close()
	defer r.cleanup()
	if err := r.startCore(ctx); err != nil {
		return Result{}, err
	}

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	r.startLoad(loadCtx, stopLoad, &load)
	r.startTimerLoad(loadCtx, stopLoad, &load)
	progressDone := r.progress(ctx)

	var async sync.WaitGroup // upgrades, poison sends, SIGCONT timers, spawns, destroys, timer bursts
	injectErr := r.inject(ctx, &async)

	// Quiesce: no more faults; let every module run again, finish the
	// upgrades in flight, make sure a core runs, then let each load
	// goroutine finish its operation in flight (retrying as needed).
	r.resumeStopped()
	async.Wait()
	if injectErr == nil && r.currentCore() == nil {
		injectErr = r.startCore(ctx)
	}
	close(stopLoad)
	loadDone := make(chan struct{})
	go func() { load.Wait(); close(loadDone) }()
	select {
	case <-loadDone:
	case <-time.After(3 * time.Minute):
		r.note("the load did not finish its operations in flight within 3m; abandoning them")
		cancelLoad()
		<-loadDone
	}
	close(progressDone)
	if injectErr != nil {
		return Result{}, injectErr
	}
	final, err := r.finish(ctx)
	if err != nil {
		return Result{}, err
	}
	rep := Check(r.hist, final)
	r.mu.Lock()
	if !rep.OK() {
		rep.Problems = append(rep.Problems, r.notes...)
	}
	r.mu.Unlock()
	if r.opts.Progress != nil {
		st := &r.stats
		fmt.Fprintf(r.opts.Progress, "chaos: faults: core kills %d (%d with timers just set), module kills %d, module stops %d, upgrades %d (%d canaries), rollbacks %d, source writes %d (upgrade requests failed: %d), poison %d, spawns %d, destroys %d; timers set %d, cancelled %d\n",
			st.coreKills.Load(), st.timerKills.Load(), st.moduleKills.Load(), st.moduleStops.Load(), st.upgrades.Load(), st.canaries.Load(), st.rollbacks.Load(),
			st.sourceWrites.Load(), st.upgradeFailures.Load(), st.poison.Load(), st.spawns.Load(), st.destroys.Load(),
			st.timers.Load(), st.cancels.Load())
	}
	return Result{Report: rep, Summary: rep.Summary(r.opts.Seed, r.opts.Events)}, nil
}

// setup builds the binaries and writes the config into the run's folder.
func (r *Runner) setup() error {
	bin := filepath.Join(r.dir, "bin")
	vers := filepath.Join(r.dir, "versions")
	plugins := filepath.Join(r.dir, "plugins")
	for _, d := range []string{bin, vers, plugins} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	if err := testbin.Build(bin, "github.com/graft-host/graft/cmd/graft"); err != nil {
		return err
	}
	const testdata = "github.com/graft-host/graft/internal/chaos/testdata/"
	if err := testbin.BuildTargets(vers, append(testbin.Pkgs(testdata+"ckv1", testdata+"ckv2", testdata+"register", testdata+"ctm"),
		testbin.Variant("ckv2bad", testdata+"ckv2", "-X main.fault=flaky -X main.code="+badCode))...); err != nil {
		return err
	}
	r.graftBin = filepath.Join(bin, "graft")
	r.versions = map[string]string{"1": filepath.Join(vers, "ckv1"), "2": filepath.Join(vers, "ckv2"), "2bad": filepath.Join(vers, "ckv2bad")}
	r.kvSource = filepath.Join(plugins, "ckv")
	if err := copyFile(r.versions["1"], r.kvSource); err != nil {
		return err
	}
	for _, b := range []string{"register", ctmBehaviour} {
		if err := copyFile(filepath.Join(vers, b), filepath.Join(plugins, b)); err != nil {
			return err
		}
	}
	r.storeDir = filepath.Join(r.dir, "data")
	r.runDir = filepath.Join(r.dir, "run")
	for i := 0; i < r.opts.KVActors; i++ {
		r.kvActors = append(r.kvActors, fmt.Sprintf("kv%d", i))
	}
	r.tmActors = []string{"tm0", "tm1"}
	r.actors = append(append(append([]string(nil), r.kvActors...), registerActor), r.tmActors...)
	r.configPath = filepath.Join(r.dir, "graft.yaml")
	if err := os.WriteFile(r.configPath, []byte(r.config(true)), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	r.client = control.NewClient(filepath.Join(r.runDir, "graft.sock"))
	return nil
}

// registerActor is the actor whose calls are checked for linearizability.
const registerActor = "reg"

// maxAttempts is the config's limits.max_attempts: high enough that the
// harness's own module kills and SIGSTOPs (which count as failed attempts
// when they hit a message handled alone) do not dead-letter a good
// message, low enough that poison is dead-lettered within seconds.
const maxAttempts = 8

// config is the YAML the core runs with. Durability alternates with the
// seed, so both modes are exercised. Every actor of "ckv" and "register"
// has its own module process: a poison message then crashes only its own
// actor's module. The actors of "ctm" (configured, spawned and virtual:
// it owns the names ctm/KEY) share one, and passivate when idle for
// 300 ms (when passivate is set), so that timers, spawns, kills and
// destroys race passivation.
func (r *Runner) config(passivate bool) string {
	passivation := ""
	if passivate {
		passivation = "\n    passivate_after: 300ms"
	}
	durability := "sync"
	if r.opts.Seed%2 != 0 {
		durability = "relaxed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `store:
  path: ./data
  durability: %s
control:
  dir: ./run
limits:
  max_attempts: %d
  batch_size: 64
supervision:
  strategy: one_for_one
  max_restarts: 100000
  period: 1s
  backoff_min: 10ms
  backoff_max: 200ms
behaviours:
  ckv:
    binary: ./plugins/ckv
    start_timeout: 20s
    call_timeout: 3s
    drain_timeout: 2s
  register:
    binary: ./plugins/register
    start_timeout: 20s
    call_timeout: 3s
    drain_timeout: 2s
  ctm:
    binary: ./plugins/ctm
    virtual: true%s
    start_timeout: 20s
    call_timeout: 3s
    drain_timeout: 2s
actors:
`, durability, maxAttempts, passivation)
	for _, a := range r.kvActors {
		fmt.Fprintf(&b, "  - name: %s\n    behaviour: ckv\n    process: own\n", a)
	}
	fmt.Fprintf(&b, "  - name: %s\n    behaviour: register\n    process: own\n", registerActor)
	for _, a := range r.tmActors {
		fmt.Fprintf(&b, "  - name: %s\n    behaviour: %s\n", a, ctmBehaviour)
	}
	return b.String()
}

// copyFile writes src's bytes to dst (mode 0755) under a temporary name
// renamed into place, so a watcher never sees a half-written binary.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// cleanup kills whatever of this run is still alive (after a harness
// error); processes are matched by executable path inside the run's folder.
func (r *Runner) cleanup() {
	if p := r.currentCore(); p != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for _, p := range processesUnder(r.dir) {
		_ = p.signal(9)
	}
}

// progress prints a line every few seconds until done is closed.
func (r *Runner) progress(ctx context.Context) chan struct{} {
	done := make(chan struct{})
	if r.opts.Progress == nil {
		return done
	}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sends, calls := r.hist.Counts()
			s := &r.stats
			fmt.Fprintf(r.opts.Progress, "chaos: %d/%d events, %d sends, %d calls, %d timers | core kills %d, module kills %d, stops %d, upgrades %d, rollbacks %d, source writes %d (failed %d), poison %d, spawns %d, destroys %d\n",
				s.events.Load(), r.opts.Events, sends, calls, s.timers.Load(), s.coreKills.Load(), s.moduleKills.Load(), s.moduleStops.Load(),
				s.upgrades.Load(), s.rollbacks.Load(), s.sourceWrites.Load(), s.upgradeFailures.Load(), s.poison.Load(),
				s.spawns.Load(), s.destroys.Load())
		}
	}()
	return done
}
