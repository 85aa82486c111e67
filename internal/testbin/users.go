package testbin

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// OtherUser is a real second user (nobody), for tests of files another
// user wrote; acting as it needs root.
type OtherUser struct{ UID, GID int }

// Nobody returns the nobody user, or skips the test (saying why) when not
// run as root.
func Nobody(t testing.TB) OtherUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to write files as a second user (run the tests as root)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the nobody user: %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("nobody's ids %q/%q", u.Uid, u.Gid)
	}
	return OtherUser{UID: uid, GID: gid}
}

// Run runs a shell script in dir as the user, as an attacker would, and
// fails the test if it fails.
func (u OtherUser) Run(t testing.TB, dir, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %s: %v\n%s", u.UID, script, err, out)
	}
}
