package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/mailbox"
)

// Version is one module version of a behaviour: its code and state schema
// versions (as the plugin reports them) and its cached binary.
type Version struct {
	Code   string `json:"code,omitempty"`
	Schema uint32 `json:"schema,omitempty"`
	SHA    string `json:"sha256"`
	Path   string `json:"path"`
	// Source is the file the binary was copied into the cache from (the
	// configured binary or an upgrade's --binary), for errors and logs.
	Source string `json:"source,omitempty"`
}

// Name is how logs and the history show a version: "1.0.0 (3f2a9c1b)".
func (v Version) Name() string {
	code := v.Code
	if code == "" {
		code = "?"
	}
	return fmt.Sprintf("%s (%.8s)", code, v.SHA)
}

// holds says whether a committed state was written by (or for) v.
func (v Version) holds(st mailbox.State) bool {
	return v.Code != "" && st.Module == v.Code && st.Schema == v.Schema
}

// Op is an upgrade or rollback in progress, recorded before the first actor
// is paused so a core killed mid-way knows, when it restarts, that it must
// finish it.
type Op struct {
	Kind    Kind      `json:"kind"`
	From    Version   `json:"from"`
	To      Version   `json:"to"`
	Started time.Time `json:"started"`
	// Canary, for a canary upgrade, is its plan, group and phase
	// (canary.go).
	Canary *CanaryState `json:"canary,omitempty"`
	// ClusterOp, in a cluster, names the op across members: minted where
	// it starts (Options.Member), taken from the announcement where it
	// is followed (UpgradeOptions.ClusterOp), and written in each
	// member's history record.
	ClusterOp string `json:"cluster_op,omitempty"`
	// Moved of ToMove is how far the move under way has come, in actors,
	// and GroupsMoved of Groups in groups of Options.GroupSize (status,
	// not journaled: a resumed op counts again).
	Moved, ToMove       int `json:"-"`
	GroupsMoved, Groups int `json:"-"`
	// resumed marks an op finished by a core restarted in its middle.
	resumed bool
	// force runs an upgrade the checks would refuse: a failed dry run, an
	// older version.
	force bool
}

// snapshot is a copy of op that shares nothing with it: the run changes
// its canary's phase while status reads the copy.
func (op Op) snapshot() Op {
	if op.Canary != nil {
		c := *op.Canary
		c.Group = slices.Clone(c.Group)
		c.Plan.Actors = slices.Clone(c.Plan.Actors)
		op.Canary = &c
	}
	return op
}

// behaviourState is the journal's record of one behaviour.
type behaviourState struct {
	// Current is the version new actors and upgrades start from.
	Current Version `json:"current"`
	// Lineage are the versions the behaviour ran before Current, oldest
	// first: an upgrade appends the version it leaves, a rollback returns
	// to the last one and drops it, so rollbacks walk back the lineage
	// (v1 -> v2 -> v3, rollback -> v2, rollback -> v1) as Erlang's release
	// handler does.
	Lineage []Version `json:"lineage,omitempty"`
	// Previous is the last version of Lineage, kept for journals written
	// before the lineage was (read when Lineage is empty).
	Previous *Version `json:"previous,omitempty"`
	// LastClusterOp is the ClusterOp of the last op completed here, kept
	// across restarts: the rollout announces a promoted canary or a
	// restarted member's publish under it (Manager.LastClusterOp).
	LastClusterOp string `json:"last_cluster_op,omitempty"`
	// Retired are the versions rolled back from, newest last (at most
	// retiredKept): in a cluster, an actor that a member still running
	// one of them hands over afterwards holds its state, which the
	// member moves down with it (Manager.WrittenBy).
	Retired []Version `json:"retired,omitempty"`
	// Live are the versions that may hold actors (Current first); more
	// than one only while (or after a stopped) rolling upgrade.
	Live []Version `json:"live"`
	// InProgress is the upgrade being carried out, if any.
	InProgress *Op `json:"in_progress,omitempty"`
	// SourceSHA is the sha256 of the configured source binary when the
	// core last acted on it, so a rebuild made while the core was down is
	// picked up at start, and only then.
	SourceSHA string `json:"source_sha256,omitempty"`
	// FailedDryRuns are the sha256s of the binaries whose last dry run
	// found actors they cannot take: an upgrade to one is refused unless
	// forced, across restarts (dryrun.go).
	FailedDryRuns []string `json:"failed_dry_runs,omitempty"`
}

// retiredKept is how many versions rolled back from the journal keeps
// (behaviourState.Retired).
const retiredKept = 4

// previous is the version a rollback returns to, or nil at the oldest.
func (bs *behaviourState) previous() *Version {
	if len(bs.Lineage) == 0 {
		return nil
	}
	v := bs.Lineage[len(bs.Lineage)-1]
	return &v
}

// completed records that op finished: the target becomes current, and the
// lineage grows by the version left (an upgrade) or shrinks by the one
// returned to (a rollback).
func (bs *behaviourState) completed(op *Op) {
	if op.Kind == KindRollback {
		bs.Retired = slices.DeleteFunc(bs.Retired, func(v Version) bool { return v.SHA == op.From.SHA || v.SHA == op.To.SHA })
		bs.Retired = append(bs.Retired, op.From)
		bs.Retired = bs.Retired[max(0, len(bs.Retired)-retiredKept):]
	}
	if p := bs.previous(); op.Kind == KindRollback && p != nil && p.SHA == op.To.SHA {
		bs.Lineage = bs.Lineage[:len(bs.Lineage)-1]
	} else {
		bs.Lineage = append(bs.Lineage, op.From)
	}
	bs.Current, bs.Live = op.To, []Version{op.To}
	bs.Previous = bs.previous()
	if op.ClusterOp != "" {
		bs.LastClusterOp = op.ClusterOp
	}
}

// versions are every version the record names, for checks and lookups.
func (bs *behaviourState) versions() []*Version {
	out := []*Version{&bs.Current}
	for i := range bs.Lineage {
		out = append(out, &bs.Lineage[i])
	}
	if bs.Previous != nil {
		out = append(out, bs.Previous)
	}
	for i := range bs.Live {
		out = append(out, &bs.Live[i])
	}
	if bs.InProgress != nil {
		out = append(out, &bs.InProgress.From, &bs.InProgress.To)
	}
	return out
}

// journal is the durable record of which versions each behaviour runs,
// kept as one JSON file beside the cache and replaced atomically.
type journal struct {
	path       string
	Behaviours map[string]*behaviourState `json:"behaviours"`
}

// loadJournal reads the journal in the cache folder c, which the core must
// have written itself: it names the binaries the core runs, so one that
// another user could have written or swapped is refused. Every version's
// binary is the cache entry named by its sha256, wherever the journal
// says it was (a store moved to another folder keeps working).
func loadJournal(c *Cache) (*journal, error) {
	path := filepath.Join(c.Dir(), "journal.json")
	j := &journal{path: path, Behaviours: map[string]*behaviourState{}}
	f, err := trust.OpenOwn(path, "upgrade journal")
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read upgrade journal %s: %w", path, err)
	}
	corrupt := func(err error) error {
		return fmt.Errorf("upgrade journal %s is corrupt: %w (restore it from a backup, or move it aside to start from the configured binaries)", path, err)
	}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, corrupt(err)
	}
	if j.Behaviours == nil {
		j.Behaviours = map[string]*behaviourState{}
	}
	for name, bs := range j.Behaviours {
		if bs == nil {
			return nil, corrupt(fmt.Errorf("behaviour %q has no record", name))
		}
		if len(bs.Lineage) == 0 && bs.Previous != nil {
			bs.Lineage = []Version{*bs.Previous}
		}
		for _, v := range bs.versions() {
			if !validSHA(v.SHA) {
				return nil, corrupt(fmt.Errorf("behaviour %q names version %s with sha256 %q, which is not 64 lowercase hex digits", name, v.Name(), v.SHA))
			}
			v.Path = c.Path(v.SHA)
		}
		bs.Previous = bs.previous()
	}
	return j, nil
}

// peekJournal says whether the journal in dir names behaviour, without
// trusting it for anything else: the config check uses it to let a
// behaviour whose source binary was deleted start from the cache, which
// Prepare then verifies.
func peekJournal(dir, behaviour string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "journal.json"))
	if err != nil {
		return false
	}
	var j journal
	if json.Unmarshal(b, &j) != nil {
		return false
	}
	return j.Behaviours[behaviour] != nil
}

// save writes the journal durably: temp file, fsync, rename, fsync folder.
func (j *journal) save() error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode upgrade journal: %w", err)
	}
	dir := filepath.Dir(j.path)
	tmp, err := os.CreateTemp(dir, ".journal-")
	if err != nil {
		return fmt.Errorf("write upgrade journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b) // not := : a failed write or fsync must stop the rename
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write upgrade journal: %w", err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("write upgrade journal: %w", err)
	}
	return syncDir(dir)
}
