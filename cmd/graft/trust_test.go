package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
)

// graftWithin runs the real binary in folder dir, bounded by within, and
// requires that it ends by itself.
func graftWithin(t *testing.T, dir string, within time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, graftBin(), args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "graft %v did not end within %s:\n%s", args, within, errOut.String())
	code := 0
	if err != nil {
		var ee *exec.ExitError
		ok := errors.As(err, &ee)
		require.True(t, ok, "graft %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// kvFolder is a folder the other user can reach (0755), with a config
// running kv v1 from dir/kv; it returns the folder and the config path.
func kvFolder(t *testing.T) (string, string) {
	dir := testbin.ShortDir(t)
	require.NoError(t, os.Chmod(dir, 0o755))
	copyFile(t, plugin("kv1"), filepath.Join(dir, "kv"), 0o755)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
behaviours:
  kv: {binary: %s}
actors:
  - {name: k0, behaviour: kv}
`, filepath.Join(dir, "kv"))), 0o644))
	return dir, path
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o600))
	require.NoError(t, os.Chmod(dst, mode))
}

func mkdirMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(path, 0o700))
	require.NoError(t, os.Chmod(path, mode))
}

// The attack: data, data/modules and run made 0777 before the
// first start; another user plants a trojan in the binary cache under its
// own sha256 and moves in a journal that names it. The core refuses to
// start, naming each folder and the fix, and once the folders are fixed
// it still refuses the journal and the binary that user wrote. The trojan
// never runs.
func TestStoreAnotherUserCanWriteIsRefused(t *testing.T) {
	other := testbin.Nobody(t)
	dir, config := kvFolder(t)
	data, modules, run := filepath.Join(dir, "data"), filepath.Join(dir, "data", "modules"), filepath.Join(dir, "run")
	for _, d := range []string{data, modules, run} {
		mkdirMode(t, d, 0o777)
	}
	b, err := os.ReadFile(plugin("kv2"))
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	sha := hex.EncodeToString(sum[:])
	trojan := filepath.Join(modules, sha)
	v := map[string]any{"code": "2.0.0", "schema": 2, "sha256": sha, "path": trojan}
	j, err := json.Marshal(map[string]any{"behaviours": map[string]any{"kv": map[string]any{"current": v, "live": []any{v}}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stage.json"), j, 0o644))
	copyFile(t, plugin("kv2"), filepath.Join(dir, "stage.bin"), 0o644)
	other.Run(t, dir, fmt.Sprintf("cp stage.bin data/modules/%s && chmod 755 data/modules/%s && cp stage.json data/modules/.j && mv data/modules/.j data/modules/journal.json", sha, sha))

	r := graftWithin(t, dir, 30*time.Second, "run", "--config", config)
	t.Log(r.stderr)
	assert.Equal(t, 1, r.code)
	for _, want := range []string{
		"store folder (store.path) " + data + " is writable by group and others (mode 0777)", "chmod go-w " + data,
		"binary cache " + modules + " is writable by group and others (mode 0777)", "chmod go-w " + modules,
		"control folder (control.dir) " + run + " is writable by group and others (mode 0777)", "chmod go-w " + run,
	} {
		assert.Contains(t, r.stderr, want)
	}

	for _, d := range []string{data, modules, run} {
		require.NoError(t, os.Chmod(d, 0o755)) // the operator's chmod go-w
	}
	r = graftWithin(t, dir, 30*time.Second, "run", "--config", config)
	t.Log(r.stderr)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "upgrade journal "+filepath.Join(modules, "journal.json")+" is owned by uid "+strconv.Itoa(other.UID)+" (nobody)")

	require.NoError(t, os.Remove(filepath.Join(modules, "journal.json"))) // the operator removes it; the trojan stays
	v["path"] = "/elsewhere"                                              // a journal the core wrote itself, naming the planted entry
	j, err = json.Marshal(map[string]any{"behaviours": map[string]any{"kv": map[string]any{"current": v, "live": []any{v}}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(modules, "journal.json"), j, 0o600))
	r = graftWithin(t, dir, 30*time.Second, "run", "--config", config)
	t.Log(r.stderr)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "binary cache entry "+trojan+" is owned by uid "+strconv.Itoa(other.UID)+" (nobody)")
	assert.Empty(t, testbin.Running(trojan), "the trojan never ran")
}

// Folders of another user, folders others can write on the way, a
// configured binary of another user and a config file others can write
// are each refused with what to do.
func TestFoldersAndConfigOfAnotherUserAreRefused(t *testing.T) {
	other := testbin.Nobody(t)
	cases := map[string]struct {
		setup func(t *testing.T, dir string)
		wants []string
	}{
		"store owned by another user": {func(t *testing.T, dir string) {
			mkdirMode(t, filepath.Join(dir, "data"), 0o700)
			require.NoError(t, os.Chown(filepath.Join(dir, "data"), other.UID, other.GID))
		}, []string{"store folder (store.path) DIR/data is owned by uid " + strconv.Itoa(other.UID) + " (nobody)", "chown -R 0 DIR/data"}},
		"control folder owned by another user": {func(t *testing.T, dir string) {
			mkdirMode(t, filepath.Join(dir, "run"), 0o700)
			require.NoError(t, os.Chown(filepath.Join(dir, "run"), other.UID, other.GID))
		}, []string{"control folder (control.dir) DIR/run is owned by uid " + strconv.Itoa(other.UID)}},
		"folder on the way others can write": {func(t *testing.T, dir string) {
			require.NoError(t, os.Chmod(dir, 0o777))
		}, []string{"store folder (store.path) DIR/data: the folder DIR on its way is writable by group and others (mode 0777) without the sticky bit", "chmod go-w DIR"}},
		"configured binary of another user": {func(t *testing.T, dir string) {
			require.NoError(t, os.Chown(filepath.Join(dir, "kv"), other.UID, other.GID))
		}, []string{"behaviour \"kv\": plugin binary DIR/kv is owned by uid " + strconv.Itoa(other.UID) + " (nobody)", "pin them in the config (behaviours.kv.sha256: "}},
		"config others can write": {func(t *testing.T, dir string) {
			require.NoError(t, os.Chmod(filepath.Join(dir, "graft.yaml"), 0o666))
		}, []string{"config file DIR/graft.yaml is writable by group and others (mode 0666)"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir, config := kvFolder(t)
			c.setup(t, dir)
			r := graftWithin(t, dir, 30*time.Second, "run", "--config", config)
			t.Log(r.stderr)
			assert.Equal(t, 1, r.code)
			for _, w := range c.wants {
				assert.Contains(t, r.stderr, strings.ReplaceAll(w, "DIR", dir))
			}
		})
	}
}

// A binary another user drops into a watched folder anyone may write is
// refused, and `graft history` says why; the old version keeps serving.
func TestWatchedBinaryOfAnotherUserIsRefused(t *testing.T) {
	other := testbin.Nobody(t)
	dir, config := kvFolder(t)
	watched := filepath.Join(dir, "w")
	mkdirMode(t, watched, 0o777)
	copyFile(t, plugin("kv1"), filepath.Join(watched, "kv"), 0o755)
	body, err := os.ReadFile(config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(config, bytes.ReplaceAll(body, []byte(filepath.Join(dir, "kv")), []byte(filepath.Join(watched, "kv"))), 0o644))
	p := startGraftAt(t, config, []string{"k0"})
	copyFile(t, plugin("kv2"), filepath.Join(dir, "stage.bin"), 0o644)
	other.Run(t, dir, "cp stage.bin w/.kv && chmod 755 w/.kv && mv -f w/.kv w/kv")
	testbin.WaitFor(t, 30*time.Second, "the refusal in graft history", func() bool {
		return strings.Contains(p.ok(t, "history"), "refused")
	})
	hist := p.ok(t, "history")
	t.Log(hist)
	assert.Contains(t, hist, "refused: plugin binary "+filepath.Join(watched, "kv")+" is owned by uid "+strconv.Itoa(other.UID)+" (nobody)")
	assert.NotNil(t, p.logLine("rebuilt plugin binary refused: another user could have written it, so the core will not run it; the old version keeps serving"))
	assert.Equal(t, "v1:1", p.ok(t, "call", "k0", "x"))
}

// `graft upgrade --binary` with a relative path means the folder the
// command runs in, not the core's; and the core refuses a relative path
// sent to its API.
func TestRelativeUpgradeBinaryIsTheCallersFolder(t *testing.T) {
	p := kvCore(t)
	dir := filepath.Dir(p.config)
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	copyFile(t, plugin("kv2"), filepath.Join(dir, "kv2"), 0o755)
	r := graftWithin(t, sub, 60*time.Second, "upgrade", "kv", "--binary", "../kv2", "--config", p.config)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "-> 2.0.0")

	c := control.NewClient(p.socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Upgrade(ctx, "kv", "../kv2")
	require.Error(t, err)
	var ae *control.APIError
	if assert.ErrorAs(t, err, &ae) {
		assert.Equal(t, http.StatusBadRequest, ae.Status, "a relative path is a bad request")
	}
	assert.Contains(t, err.Error(), "relative binary path")
	assert.Contains(t, err.Error(), "give an absolute path")
}

// After the configured binary is deleted, the core starts from the version
// in its binary cache and warns.
func TestDeletedSourceBinaryStartsFromTheCache(t *testing.T) {
	p := kvCore(t)
	p.ok(t, "upgrade", "kv", "--binary", plugin("kv2"))
	p.stop(t)
	require.NoError(t, os.Remove(filepath.Join(filepath.Dir(p.config), "kv")))
	q := startGraftAt(t, p.config, []string{"k0", "k1", "k2"})
	assert.Equal(t, "v2:2", q.ok(t, "call", "k0", "again"))
	assert.NotNil(t, q.logLine("configured plugin binary does not exist; starting from the version in the binary cache (build it again to upgrade)"))
	assert.Contains(t, q.ok(t, "rollback", "kv"), "-> 1.0.0", "the previous version is cached too")
}
