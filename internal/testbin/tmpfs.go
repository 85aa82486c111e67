package testbin

import (
	"os/exec"
	"testing"
)

// MountTmpfs mounts a real tmpfs of the given size (e.g. "48m") on a fresh
// folder and unmounts it when the test ends; it skips, saying why, only
// when mounting is impossible here (not root, no mount).
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs for the full-disk test (needs root and mount): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
