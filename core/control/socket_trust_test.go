package control_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/internal/trust"
)

// Whoever can write the control folder can put their own socket where the
// CLI looks for the core's: Listen refuses a folder another user owns or
// may write, naming it and the fix, and creates a missing one 0700.
func TestListenRefusesAControlFolderOthersCanWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to give a folder to a second user (run the tests as root)")
	}
	u, err := user.Lookup("nobody")
	require.NoError(t, err)
	uid, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)
	gid, err := strconv.Atoi(u.Gid)
	require.NoError(t, err)
	dir := testbin.ShortDir(t)

	open := filepath.Join(dir, "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o777))
	_, err = control.Listen(filepath.Join(open, "graft.sock"))
	require.ErrorIs(t, err, trust.ErrUntrusted)
	assert.ErrorContains(t, err, "control folder "+open+" is writable by group and others (mode 0777)")
	assert.ErrorContains(t, err, "chmod go-w "+open)

	theirs := filepath.Join(dir, "theirs")
	require.NoError(t, os.Mkdir(theirs, 0o700))
	require.NoError(t, os.Chown(theirs, uid, gid))
	_, err = control.Listen(filepath.Join(theirs, "graft.sock"))
	require.ErrorIs(t, err, trust.ErrUntrusted)
	assert.ErrorContains(t, err, "control folder "+theirs+" is owned by uid "+u.Uid+" (nobody)")

	fresh := filepath.Join(dir, "fresh", "run")
	l, err := control.Listen(filepath.Join(fresh, "graft.sock"))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	fi, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}
