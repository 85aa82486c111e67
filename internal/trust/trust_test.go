package trust_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/trust"
)

// nobody is the uid of a real second user; the tests that need one (they
// chown files to it) run as root.
func nobody(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to give files to a second user (run the tests as root)")
	}
	u, err := user.Lookup("nobody")
	require.NoError(t, err, "the nobody user")
	uid, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)
	return uid
}

func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(path, 0o700))
	require.NoError(t, os.Chmod(path, mode)) // past the umask
	return path
}

func requireRefused(t *testing.T, err error, wants ...string) {
	t.Helper()
	require.Error(t, err)
	t.Log(err)
	require.ErrorIs(t, err, trust.ErrUntrusted)
	for _, w := range wants {
		assert.Contains(t, err.Error(), w)
	}
}

func TestCheckDirRefusesFoldersOthersCanWrite(t *testing.T) {
	uid := nobody(t)
	base := t.TempDir()
	at := func(p string) string { return filepath.Join(base, p) }
	cases := []struct {
		name, path string // path: the store folder, under base
		setup      func(d string)
		wants      []string
	}{
		{"world-writable", "ww", func(d string) { mkdir(t, d, 0o777) },
			[]string{"store folder " + at("ww") + " is writable by group and others (mode 0777)", "chmod go-w " + at("ww")}},
		{"group-writable", "gw", func(d string) { mkdir(t, d, 0o770) }, []string{"writable by group (mode 0770)"}},
		{"sticky", "st", func(d string) { mkdir(t, d, 0o777|os.ModeSticky) }, []string{"mode 1777"}},
		{"owned by nobody", "nb", func(d string) { mkdir(t, d, 0o700); require.NoError(t, os.Chown(d, uid, uid)) },
			[]string{"is owned by uid " + strconv.Itoa(uid) + " (nobody), not by the core's user uid 0", "chown -R 0 " + at("nb")}},
		{"parent world-writable", "pw/data", func(d string) { mkdir(t, filepath.Dir(d), 0o777); mkdir(t, d, 0o700) },
			[]string{"the folder " + at("pw") + " on its way is writable by group and others (mode 0777) without the sticky bit", "chmod go-w " + at("pw")}},
		{"parent owned by nobody", "pn/data", func(d string) { mkdir(t, d, 0o700); require.NoError(t, os.Chown(filepath.Dir(d), uid, uid)) },
			[]string{"the folder " + at("pn") + " on its way is owned by uid " + strconv.Itoa(uid) + " (nobody)"}},
		{"missing, in a world-writable parent", "mw/x/data", func(d string) { mkdir(t, at("mw"), 0o777) },
			[]string{"the folder " + at("mw") + " on its way is writable"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := at(c.path)
			c.setup(d)
			requireRefused(t, trust.CheckDir(d, "store folder"), c.wants...)
			requireRefused(t, trust.EnsureDir(d, "store folder"), c.wants...)
		})
	}
}

func TestCheckDirAcceptsWhatIsTheCoresOwn(t *testing.T) {
	base := t.TempDir()
	require.NoError(t, trust.CheckDir(base, "store folder"), "a 0700 folder of its own under /tmp (sticky)")
	d := filepath.Join(base, "a", "b", "data")
	require.NoError(t, trust.CheckDir(d, "store folder"), "not there yet, inside a safe folder")
	require.NoError(t, trust.EnsureDir(d, "store folder"))
	fi, err := os.Stat(d)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "created 0700")
	shared := mkdir(t, filepath.Join(base, "shared"), 0o777|os.ModeSticky)
	require.NoError(t, trust.EnsureDir(filepath.Join(shared, "data"), "store folder"), "a sticky shared folder on the way, like /tmp")
	readable := mkdir(t, filepath.Join(base, "readable"), 0o755)
	require.NoError(t, trust.CheckDir(readable, "store folder"), "others may read, not write")
}

// A symbolic link on the way is resolved: the folders of its target count,
// and so does the folder holding the link.
func TestCheckDirFollowsLinksOnTheWay(t *testing.T) {
	base := t.TempDir()
	open := mkdir(t, filepath.Join(base, "open"), 0o777)
	safe := mkdir(t, filepath.Join(base, "safe"), 0o700)
	target := mkdir(t, filepath.Join(open, "data"), 0o700)
	require.NoError(t, os.Symlink(target, filepath.Join(safe, "data")))
	requireRefused(t, trust.CheckDir(filepath.Join(safe, "data"), "store folder"), "the folder "+open+" on its way")

	good := mkdir(t, filepath.Join(safe, "real"), 0o700)
	require.NoError(t, os.Symlink(good, filepath.Join(open, "link")))
	requireRefused(t, trust.CheckDir(filepath.Join(open, "link"), "store folder"), "the folder "+open+" on its way")
	require.NoError(t, os.Symlink(good, filepath.Join(safe, "link")))
	require.NoError(t, trust.CheckDir(filepath.Join(safe, "link"), "store folder"))
}

func TestOpenOwnRefusesWhatTheCoreDidNotWrite(t *testing.T) {
	uid := nobody(t)
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("bytes"), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	mine := write("mine", 0o700)
	theirs := write("theirs", 0o755)
	require.NoError(t, os.Chown(theirs, uid, uid))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(theirs, link))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	f, err := trust.OpenOwn(mine, "binary cache entry")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = trust.OpenOwn(link, "binary cache entry")
	requireRefused(t, err, "binary cache entry "+link+" is a symbolic link", "rm "+link)
	_, err = trust.OpenOwn(theirs, "upgrade journal")
	requireRefused(t, err, "upgrade journal "+theirs+" is owned by uid "+strconv.Itoa(uid)+" (nobody)")
	_, err = trust.OpenOwn(write("open", 0o666), "upgrade journal")
	requireRefused(t, err, "writable by group and others (mode 0666)", "chmod go-w")
	done := make(chan error, 1)
	go func() { _, err := trust.OpenOwn(fifo, "upgrade journal"); done <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-done:
		requireRefused(t, err, "is not a regular file")
	case <-ctx.Done():
		t.Fatal("opening a FIFO blocked")
	}
	_, err = trust.OpenOwn(filepath.Join(dir, "missing"), "upgrade journal")
	require.True(t, errors.Is(err, fs.ErrNotExist), "missing: %v", err)
	assert.False(t, errors.Is(err, trust.ErrUntrusted))
}

func TestGivenFilesMustBeTheCoresOrRoots(t *testing.T) {
	uid := nobody(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "plugin")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, trust.GivenFile(p, "plugin binary"))
	require.NoError(t, os.Chmod(p, 0o775))
	requireRefused(t, trust.GivenFile(p, "plugin binary"), "writable by group (mode 0775)")
	require.NoError(t, os.Chmod(p, 0o755))
	require.NoError(t, os.Chown(p, uid, uid))
	requireRefused(t, trust.GivenFile(p, "plugin binary"), "owned by uid "+strconv.Itoa(uid)+" (nobody), not by the core's user uid 0 (root), so")
	require.NoError(t, os.Chown(p, 0, 0))
	require.NoError(t, os.Chmod(dir, 0o777))
	requireRefused(t, trust.GivenFile(p, "config file"), "the folder "+dir+" on its way")
}
