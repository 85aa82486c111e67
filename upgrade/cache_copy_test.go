package upgrade

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A source that changed while the cache read it (a build still writing
// it, or another file renamed over it) is refused rather than cached
// under the hash of bytes no build made; an unchanged one passes.
func TestCopyOfASourceChangedWhileReadIsRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "plugin")
	require.NoError(t, os.WriteFile(src, []byte("first build, complete"), 0o755))
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	before, err := f.Stat()
	require.NoError(t, err)

	require.NoError(t, unchangedWhileRead(f, before, before.Size()))
	require.ErrorContains(t, unchangedWhileRead(f, before, before.Size()-3), "changed while it was being copied", "fewer bytes read than its size")

	require.NoError(t, os.WriteFile(src, []byte("second"), 0o755)) // the same file, rewritten
	require.ErrorContains(t, unchangedWhileRead(f, before, before.Size()), "changed while it was being copied")

	cache, err := OpenCache(filepath.Join(dir, "cache"))
	require.NoError(t, err)
	path, sha, err := cache.Add(src, nil)
	require.NoError(t, err, "a source at rest is copied")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "second", string(got))
	require.NoError(t, cache.Verify(sha))
}
