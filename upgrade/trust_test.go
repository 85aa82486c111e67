package upgrade_test

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/upgrade"
)

// logs collects a manager's log lines for the test to read.
type logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func captureLogs(t *testing.T) (*slog.Logger, *logs) {
	l := &logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager logs:\n%s", l.String())
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})), l
}

func sha256Of(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// prepareAgain opens the manager on dir's store as a restarted core would
// and returns Prepare's (or New's) error.
func prepareAgain(t *testing.T, dir string) error {
	cfg, _ := kvConfig(t, dir, 1)
	mgr, err := upgrade.New(upgrade.Options{Dir: filepath.Join(dir, "store", "modules"), Logger: testLogger(t)})
	if err != nil {
		return err
	}
	return mgr.Prepare(&cfg)
}

// A cached module the core did not write, or whose bytes are not the ones
// its name says, is refused at start: before, a symbolic link in the cache
// to a file of another user was followed and run as root.
func TestUntrustedCacheEntryIsRefusedAtStart(t *testing.T) {
	other := testbin.Nobody(t)
	cases := map[string]struct {
		tamper func(t *testing.T, entry string)
		wants  []string
	}{
		"symlink to another user's copy": {func(t *testing.T, entry string) {
			trojan := filepath.Join(filepath.Dir(entry), "..", "trojan")
			b, err := os.ReadFile(entry) // the right bytes: the pin would not notice, but the user can change them later
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(trojan, b, 0o755))
			require.NoError(t, os.Chown(trojan, other.UID, other.GID))
			require.NoError(t, os.Remove(entry))
			require.NoError(t, os.Symlink(trojan, entry))
		}, []string{"is a symbolic link", "rm "}},
		"owned by another user": {func(t *testing.T, entry string) {
			require.NoError(t, os.Chown(entry, other.UID, other.GID))
		}, []string{"is owned by uid " + strconv.Itoa(other.UID)}},
		"writable by others": {func(t *testing.T, entry string) {
			require.NoError(t, os.Chmod(entry, 0o777))
		}, []string{"writable by group and others (mode 0777)", "chmod go-w " + "ENTRY"}},
		"bytes not its name": {func(t *testing.T, entry string) {
			b, err := os.ReadFile(bin("kv2"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(entry, b, 0o700))
		}, []string{"not the sha256 its name says"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			install(t, "kv1", dir+"/kv")
			s := boot(t, dir, 1, upgrade.Options{})
			cur, _ := s.mgr.Current("kv")
			s.stop()
			c.tamper(t, cur.Path)
			err := prepareAgain(t, dir)
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), "binary cache entry "+cur.Path)
			assert.Contains(t, err.Error(), "behaviour \"kv\"")
			for _, w := range c.wants {
				assert.Contains(t, err.Error(), strings.ReplaceAll(w, "ENTRY", cur.Path))
			}
		})
	}
}

// The journal names the binaries the core runs: one the core did not
// write is refused.
func TestUntrustedJournalIsRefused(t *testing.T) {
	other := testbin.Nobody(t)
	cases := map[string]func(t *testing.T, journal string){
		"owned by another user": func(t *testing.T, j string) { require.NoError(t, os.Chown(j, other.UID, other.GID)) },
		"writable by others":    func(t *testing.T, j string) { require.NoError(t, os.Chmod(j, 0o666)) },
		"symlink": func(t *testing.T, j string) {
			require.NoError(t, os.Rename(j, j+".real"))
			require.NoError(t, os.Symlink(j+".real", j))
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			install(t, "kv1", dir+"/kv")
			boot(t, dir, 1, upgrade.Options{}).stop()
			j := filepath.Join(dir, "store", "modules", "journal.json")
			tamper(t, j)
			err := prepareAgain(t, dir)
			require.ErrorIs(t, err, trust.ErrUntrusted)
			t.Log(err)
			assert.Contains(t, err.Error(), "upgrade journal "+j)
		})
	}
}

// A binary cache (or a folder on its way) another user can write is
// refused, naming the folder and the fix.
func TestUntrustedModuleCacheFolderIsRefused(t *testing.T) {
	other := testbin.Nobody(t)
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	boot(t, dir, 1, upgrade.Options{}).stop()
	store, modules := filepath.Join(dir, "store"), filepath.Join(dir, "store", "modules")
	require.NoError(t, os.Chmod(modules, 0o777))
	err := prepareAgain(t, dir)
	require.ErrorIs(t, err, trust.ErrUntrusted)
	assert.ErrorContains(t, err, "binary cache "+modules+" is writable by group and others (mode 0777)")
	assert.ErrorContains(t, err, "chmod go-w "+modules)

	require.NoError(t, os.Chmod(modules, 0o700))
	require.NoError(t, os.Chown(modules, other.UID, other.GID))
	assert.ErrorContains(t, prepareAgain(t, dir), "binary cache "+modules+" is owned by uid "+strconv.Itoa(other.UID))

	require.NoError(t, os.Chown(modules, 0, 0))
	require.NoError(t, os.Chmod(store, 0o777))
	assert.ErrorContains(t, prepareAgain(t, dir), "the folder "+store+" on its way is writable by group and others")
	require.NoError(t, os.Chmod(store, 0o700))
	require.NoError(t, prepareAgain(t, dir), "safe again")
}

// A binary another user could have written, dropped into a watched folder
// anyone may write, is refused (in the log and the history) and the old
// version keeps serving; pinned by sha256 in the config, it is accepted.
func TestBinaryAnotherUserWroteIsRefusedUnlessPinned(t *testing.T) {
	other := testbin.Nobody(t)
	dir := testbin.ShortDir(t)
	require.NoError(t, os.Chmod(dir, 0o755)) // the other user may reach the watched folder
	watched := filepath.Join(dir, "w")
	require.NoError(t, os.Mkdir(watched, 0o700))
	require.NoError(t, os.Chmod(watched, 0o777))
	source := filepath.Join(watched, "kv")
	install(t, "kv1", source)
	log, lines := captureLogs(t)
	useSource := func(pin string) func(*core.Config) {
		return func(cfg *core.Config) {
			b := cfg.Behaviours["kv"]
			b.Binary, b.SHA256 = source, pin
			cfg.Behaviours["kv"] = b
		}
	}
	s := bootWith(t, dir, 1, upgrade.Options{Debounce: 50 * time.Millisecond, Logger: log}, useSource(""))
	require.NoError(t, s.mgr.Watch(ctxFor(t, 2*time.Minute)))
	assert.Contains(t, lines.String(), "watched folder is writable by other users")

	install(t, "kv2", filepath.Join(dir, "stage"))
	require.NoError(t, os.Chmod(filepath.Join(dir, "stage"), 0o644))
	other.Run(t, dir, "cp stage w/.kv.tmp && chmod 755 w/.kv.tmp && mv -f w/.kv.tmp w/kv")
	waitFor(t, 20*time.Second, "the refusal in the history", func() bool { return len(s.history(t)) == 1 })
	rec := s.history(t)[0]
	assert.Equal(t, "refused", rec.Outcome)
	assert.Contains(t, rec.Error, "plugin binary "+source+" is owned by uid "+strconv.Itoa(other.UID))
	assert.Contains(t, rec.Error, "behaviours.kv.sha256: "+sha256Of(t, source))
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(lines.String(), "rebuilt plugin binary refused")
	})
	reply, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("x"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v1:1", string(reply), "the old version keeps serving")

	open := filepath.Join(dir, "open-kv2")
	install(t, "kv2", open)
	require.NoError(t, os.Chmod(open, 0o777))
	_, err = s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", open)
	require.ErrorIs(t, err, trust.ErrUntrusted)
	assert.ErrorContains(t, err, "plugin binary "+open+" is writable by group and others (mode 0777)")
	require.Len(t, s.history(t), 2)
	assert.Equal(t, "refused", s.history(t)[1].Outcome)

	// Pinned, the same bytes are trusted: the restarted core picks up the
	// source that changed while it was down.
	s.stop()
	s = bootWith(t, dir, 1, upgrade.Options{Logger: log}, useSource(sha256Of(t, source)))
	waitFor(t, 30*time.Second, "the upgrade to the pinned binary", func() bool {
		h := s.history(t)
		return len(h) == 3 && h[2].Outcome == "completed"
	})
	reply, err = s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte("y"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v2:2", string(reply))
}

// The core cannot know the folder a relative binary path was meant
// against; it refuses one rather than guess its own.
func TestRelativeBinaryIsRefused(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 1, upgrade.Options{})
	_, err := s.mgr.Upgrade(ctxFor(t, 10*time.Second), "kv", "../kv2")
	require.ErrorIs(t, err, upgrade.ErrRelativePath)
	assert.ErrorContains(t, err, "give an absolute path")
	assert.Empty(t, s.history(t))
}
