package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
	Kind    string    `json:"kind"` // "upgrade" or "rollback"
	From    Version   `json:"from"`
	To      Version   `json:"to"`
	Started time.Time `json:"started"`
	// resumed marks an op finished by a core restarted in its middle.
	resumed bool
}

// behaviourState is the journal's record of one behaviour.
type behaviourState struct {
	// Current is the version new actors and upgrades start from.
	Current Version `json:"current"`
	// Previous is the version a rollback returns to.
	Previous *Version `json:"previous,omitempty"`
	// Live are the versions that may hold actors (Current first); more
	// than one only while (or after a stopped) rolling upgrade.
	Live []Version `json:"live"`
	// InProgress is the upgrade being carried out, if any.
	InProgress *Op `json:"in_progress,omitempty"`
	// SourceSHA is the sha256 of the configured source binary when the
	// core last acted on it, so a rebuild made while the core was down is
	// picked up at start, and only then.
	SourceSHA string `json:"source_sha256,omitempty"`
}

// journal is the durable record of which versions each behaviour runs,
// kept as one JSON file beside the cache and replaced atomically.
type journal struct {
	path       string
	Behaviours map[string]*behaviourState `json:"behaviours"`
}

func loadJournal(path string) (*journal, error) {
	j := &journal{path: path, Behaviours: map[string]*behaviourState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read upgrade journal %s: %w", path, err)
	}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("upgrade journal %s is corrupt: %w (restore it from a backup, or move it aside to start from the configured binaries)", path, err)
	}
	if j.Behaviours == nil {
		j.Behaviours = map[string]*behaviourState{}
	}
	return j, nil
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
	if _, err := tmp.Write(b); err == nil {
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
