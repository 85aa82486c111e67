package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// A dry run checks a new binary against every actor's committed state
// before any upgrade to it, and changes nothing: no actor is paused,
// nothing is committed, no actor moves.
//
//	cache the binary (trust checks as for an upgrade)
//	  → load it beside the running version (a module no actor runs on)
//	  → for every actor of the behaviour, its committed state s (read
//	    from the store; a passive actor is not woken):
//	      up := migrate(s, new schema)    with the new module
//	      back := migrate(up, s.Schema)   with the new module's down-step
//	      back == s ?                     (bytes, or equal JSON)
//	  → unload it, record the report in the history (kind "dry-run")
//
// An actor whose migration fails, panics or times out, or that the new
// module cannot migrate, fails the dry run: a later Upgrade to the same
// binary is refused while its last dry run failed, unless forced (the
// verdict is journaled, so it outlives the core). An actor whose state
// has no way back down, or does not come back the same, is reported as a
// warning: the upgrade itself would take it, only a rollback would not.
// A dry run cut short (its context ended) records no verdict.

// DryRunReport is what a dry run found.
type DryRunReport struct {
	Behaviour string
	From, To  string // version names, as in the history
	Actors    int    // actors of the behaviour
	// NoState counts the actors with no committed state (Init makes it
	// on the new version; nothing to migrate).
	NoState int
	// Migrated and RoundTrip count the states that migrated up, and that
	// came back down equal.
	Migrated, RoundTrip int
	// Counts are the actors that did not pass, by kind: "migration
	// failed", "migration panicked", "migration timed out", "cannot
	// migrate" (these block an upgrade), "no down-migration", "round trip
	// differs" (warnings). Failures lists the first of each kind.
	Counts   map[string]int
	Failures map[string][]DryRunFailure
	// Replay is what replaying the kept traffic found (replay.go); nil
	// when the behaviour keeps none (no verify_window).
	Replay *ReplayReport
	// Took is how long it ran.
	Took time.Duration
}

// DryRunFailure is one actor that did not pass.
type DryRunFailure struct {
	Actor  string
	Detail string
}

// Failed counts the actors that did not pass, warnings included.
func (r DryRunReport) Failed() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Blocking counts the actors whose failure blocks an upgrade, and the
// replayed messages the new version failed.
func (r DryRunReport) Blocking() int {
	return r.Failed() - r.Counts[failNoDown] - r.Counts[failDiffers] + r.Replay.Failures()
}

// Summary is the report in one line, as the history and the CLI say it.
func (r DryRunReport) Summary() string {
	s := fmt.Sprintf("dry run of %s %s -> %s: %d actors, %d without state, migrations %d ok, round trip %d ok",
		r.Behaviour, r.From, r.To, r.Actors, r.NoState, r.Migrated, r.RoundTrip)
	if n := r.Failed(); n > 0 {
		var kinds []string
		for k, f := range r.Failures {
			kinds = append(kinds, fmt.Sprintf("%s %d (e.g. %s: %s)", k, r.Counts[k], f[0].Actor, f[0].Detail))
		}
		slices.Sort(kinds)
		s += fmt.Sprintf("; %d failed (%d blocking the upgrade): %s", n, r.Failed()-r.Counts[failNoDown]-r.Counts[failDiffers], strings.Join(kinds, "; "))
	}
	if r.Replay != nil {
		s += "; " + r.Replay.summary()
	}
	return s
}

// maxFailureExamples bounds the actors listed per kind (all are counted).
const maxFailureExamples = 20

// Kinds of dry-run failure.
const (
	failMigration = "migration failed"
	failPanic     = "migration panicked"
	failTimeout   = "migration timed out"
	failCannot    = "cannot migrate"
	failNoDown    = "no down-migration"
	failDiffers   = "round trip differs"
)

// DryRun checks the binary at source (the configured source when "")
// against every actor of behaviour, as the package doc's dry run says,
// records the report in the history and returns it. It fails only when it
// could not run (an untrusted or broken binary, another op of the
// behaviour in progress); actors that do not pass are in the report, and
// make a later Upgrade to that binary refuse unless forced.
func (m *Manager) DryRun(ctx context.Context, behaviour, source string) (DryRunReport, error) {
	op, err := m.prepareOp(behaviour, source, KindDryRun)
	var refused *refusal
	if errors.As(err, &refused) {
		m.record(ctx, refused.rec)
	}
	if err != nil {
		return DryRunReport{}, err
	}
	defer m.end(behaviour)
	started := time.Now()
	rep := DryRunReport{Behaviour: behaviour, From: op.From.Name(), Counts: map[string]int{}, Failures: map[string][]DryRunFailure{}}
	target, err := m.host.LoadModule(ctx, behaviour, op.To.Path, op.To.SHA)
	if err != nil {
		return rep, fmt.Errorf("dry run of %q: %w", behaviour, err)
	}
	defer func() {
		if _, err := m.host.UnloadModule(context.WithoutCancel(ctx), behaviour, op.To.Path); err != nil {
			m.log.Warn("the dry run's module did not stop cleanly", "behaviour", behaviour, "err", err)
		}
	}()
	mod, err := target.Module(ctx)
	if err != nil {
		return rep, fmt.Errorf("dry run of %q: %w", behaviour, err)
	}
	info := mod.Info()
	op.To.Code, op.To.Schema = info.CodeVersion, info.SchemaVersion
	rep.To = op.To.Name()
	defer func() { // loaded just below if no actor ran it: stopped again unless one does
		if _, err := m.host.UnloadModule(context.WithoutCancel(ctx), behaviour, op.From.Path); err != nil {
			m.log.Warn("the running version's module did not stop cleanly", "behaviour", behaviour, "err", err)
		}
	}()
	if from, err := m.host.LoadModule(ctx, behaviour, op.From.Path, op.From.SHA); err == nil {
		if fm, err := from.Module(ctx); err == nil { // the running one: learn its versions for the report
			op.From.Code, op.From.Schema = fm.Info().CodeVersion, fm.Info().SchemaVersion
			m.learn(behaviour, op.From)
			rep.From = op.From.Name()
		}
	}
	if err := m.checkAll(ctx, mod, op.To.Schema, &rep); err != nil {
		return rep, fmt.Errorf("dry run of %q: %w", behaviour, err)
	}
	if err := m.replayAll(ctx, behaviour, op.To, &rep); err != nil {
		return rep, fmt.Errorf("dry run of %q: replay: %w", behaviour, err)
	}
	rep.Took = time.Since(started)
	if err := m.noteDryRun(behaviour, op.To.SHA, rep.Blocking() > 0); err != nil {
		m.log.Error("could not journal the dry run's verdict", "behaviour", behaviour, "err", err)
	}
	outcome, errText := "passed", ""
	switch {
	case rep.Blocking() > 0:
		outcome, errText = "failed", rep.Summary()
	case rep.Failed() > 0:
		outcome, errText = "passed with warnings", rep.Summary()
	case rep.Replay != nil:
		errText = rep.Summary() // what the replay found, differences included
	}
	m.record(ctx, mailbox.UpgradeRecord{
		Behaviour: behaviour, Kind: string(KindDryRun), Started: started.UTC(), Ended: time.Now().UTC(),
		From: rep.From, To: rep.To, Outcome: outcome, Error: errText, Actors: rep.Actors,
	})
	return rep, nil
}

// checkAll migrates every actor's state up and back down with mod,
// several at a time, into rep.
func (m *Manager) checkAll(ctx context.Context, mod *dynamic.Instance, to uint32, rep *DryRunReport) error {
	actors := m.host.ActorsOf(rep.Behaviour)
	rep.Actors = len(actors)
	var mu sync.Mutex
	sem := make(chan struct{}, max(m.opts.GroupSize, 1))
	var wg sync.WaitGroup
	var readErr error
	for _, a := range actors {
		if err := ctx.Err(); err != nil {
			readErr = fmt.Errorf("cut short (no verdict recorded): %w", err)
			break
		}
		st, err := m.host.State(ctx, a)
		if err != nil {
			readErr = fmt.Errorf("read the state of actor %q: %w", a, err)
			break
		}
		if len(st.Data) == 0 && st.Module == "" { // nothing committed, or reset
			rep.NoState++
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			kind, detail := m.roundTrip(ctx, mod, a, st, to)
			mu.Lock()
			defer mu.Unlock()
			switch kind {
			case "":
				rep.Migrated++
				rep.RoundTrip++
			case failDiffers, failNoDown:
				rep.Migrated++
				fallthrough
			default:
				rep.Counts[kind]++
				if len(rep.Failures[kind]) < maxFailureExamples {
					rep.Failures[kind] = append(rep.Failures[kind], DryRunFailure{Actor: a, Detail: detail})
				}
			}
		}()
	}
	wg.Wait()
	for _, fs := range rep.Failures { // in a stable order, whichever finished first
		slices.SortFunc(fs, func(x, y DryRunFailure) int { return strings.Compare(x.Actor, y.Actor) })
	}
	if readErr == nil && ctx.Err() != nil {
		// Migrations the end of ctx failed are not the binary's fault.
		readErr = fmt.Errorf("cut short (no verdict recorded): %w", ctx.Err())
	}
	return readErr
}

// roundTrip migrates st up to schema to and back, and says what failed
// ("" when nothing did).
func (m *Manager) roundTrip(ctx context.Context, mod *dynamic.Instance, actor string, st mailbox.State, to uint32) (kind, detail string) {
	info := mod.Info()
	if st.Schema == to {
		return "", "" // same schema: nothing migrates
	}
	if !info.CanMigrate(st.Schema, to) {
		return failCannot, fmt.Sprintf("schema %d, and module %s migrates up from %v", st.Schema, info.CodeVersion, info.MigratesFrom)
	}
	up, err := m.migrateOnce(ctx, mod, actor, dynamic.State{Schema: st.Schema, Data: st.Data}, to)
	if err != nil {
		return classify(err), err.Error()
	}
	if !info.CanMigrate(to, st.Schema) {
		return failNoDown, fmt.Sprintf("module %s migrates down to %v, not to schema %d", info.CodeVersion, info.MigratesTo, st.Schema)
	}
	back, err := m.migrateOnce(ctx, mod, actor, up, st.Schema)
	if err != nil {
		return classify(err), "down: " + err.Error()
	}
	if !sameState(st.Data, back.Data) {
		return failDiffers, fmt.Sprintf("%s came back as %s", clip(st.Data), clip(back.Data))
	}
	return "", ""
}

// migrateOnce is one migration bounded by the manager's MigrateTimeout.
func (m *Manager) migrateOnce(ctx context.Context, mod *dynamic.Instance, actor string, st dynamic.State, to uint32) (dynamic.State, error) {
	mctx, cancel := context.WithTimeout(ctx, m.opts.MigrateTimeout)
	defer cancel()
	return mod.Migrate(mctx, actor, st, to)
}

// classify names a migration's failure.
func classify(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "DeadlineExceeded"), strings.Contains(err.Error(), "deadline exceeded"):
		return failTimeout // the text too: gRPC's status may carry it without the error
	case strings.Contains(err.Error(), "panic in Migrate"):
		return failPanic // the SDK's PanicError, as its text crosses the process boundary
	}
	return failMigration
}

// sameState says whether two encoded states are equal: the same bytes,
// or the same JSON value (a codec may order a map's keys differently).
func sameState(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, errA := decodeJSON(a)
	y, errB := decodeJSON(b)
	return errA == nil && errB == nil && reflect.DeepEqual(x, y)
}

// decodeJSON decodes b keeping numbers exact (json.Number), so that two
// large integers that differ never compare equal as float64s.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// clip is a state for a report: at most 80 bytes, quoted.
func clip(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%q...", b[:80])
	}
	return fmt.Sprintf("%q", b)
}
