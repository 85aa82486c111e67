package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/trust"
)

// Cache holds the plugin binaries the core runs, each named by its
// sha256. The path a user rebuilds is only a source: the core copies a
// binary in when it accepts it and runs modules only from here, so a
// rebuild never disturbs a running module, and rollback or a restart in the
// middle of an upgrade always finds the old version's bytes.
type Cache struct {
	dir string
	// pins is the core's memo of hashed binaries (dynamic.Pins), once
	// attached: the cache vouches for each entry it wrote or verified, so
	// the module's start does not hash the same bytes again.
	pins atomic.Pointer[dynamic.Pins]
}

// OpenCache opens (creating, 0700) the cache folder dir. The folder and
// every folder on its way must be safe from other users (see
// internal/trust): whoever can write the cache chooses what the core runs.
func OpenCache(dir string) (*Cache, error) {
	if err := trust.EnsureDir(dir, "binary cache"); err != nil {
		return nil, err
	}
	return &Cache{dir: dir}, nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Path is where the binary with this sha256 is (or would be) cached.
func (c *Cache) Path(sha string) string { return filepath.Join(c.dir, sha) }

// Accept decides, from the sha256 of the bytes read and the stat of the
// open source file, whether a binary may enter the cache; its error is
// Add's.
type Accept func(sha string, fi os.FileInfo) error

// Add copies the binary at src into the cache (if it is not there yet) and
// returns its cached path and sha256. accept (if not nil) sees the bytes'
// sha256 and the source's stat, both from the one open file the copy is
// read from, before anything is kept, so what is checked is what is
// cached. The copy is written to a temporary file, fsynced and renamed, so
// a crash never leaves a half-written binary under a sha256 name; a cached
// entry that fails Verify is replaced by the fresh copy.
func (c *Cache) Add(src string, accept Accept) (path, sha string, err error) {
	f, err := os.Open(src)
	if err != nil {
		return "", "", fmt.Errorf("read plugin binary %s: %w", src, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", fmt.Errorf("read plugin binary %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("plugin binary %s is not a regular file: point the config at the built binary", src)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", "", fmt.Errorf("plugin binary %s is not executable: chmod +x it (or finish writing it)", src)
	}
	tmp, err := os.CreateTemp(c.dir, ".incoming-")
	if err != nil {
		return "", "", fmt.Errorf("binary cache %s: %w", c.dir, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	defer tmp.Close()
	h := sha256.New()
	if fi.Size() > 0 {
		// Allocated up front (the size is left to the copy), the copy's
		// blocks are one extent written into, so the store's log syncs
		// meanwhile do not wait on a journal commit that carries their
		// allocation.
		_ = unix.Fallocate(int(tmp.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, fi.Size())
	}
	n, err := copyTrickled(tmp, io.TeeReader(f, h))
	if err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	if err := unchangedWhileRead(f, fi, n); err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	if accept != nil {
		if err := accept(sha, fi); err != nil {
			return "", sha, err
		}
	}
	path = c.Path(sha)
	if c.Verify(sha) == nil {
		return path, sha, nil
	}
	if err := tmp.Chmod(0o700); err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", fmt.Errorf("copy %s into the binary cache: %w", src, err)
	}
	if err := syncDir(c.dir); err != nil {
		return "", "", err
	}
	c.pins.Load().Vouch(path, sha)
	return path, sha, nil
}

// Verify checks the cached binary with this sha256 before the core trusts
// it: opened without following a symbolic link, a regular file owned by
// the core's user that no one else may write, whose bytes hash to its
// name. A missing entry gives an error matching fs.ErrNotExist.
func (c *Cache) Verify(sha string) error {
	if !validSHA(sha) {
		return fmt.Errorf("binary cache: %q is not a sha256 (64 lowercase hex digits)", sha)
	}
	path := c.Path(sha)
	f, err := trust.OpenOwn(path, "binary cache entry")
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && c.pins.Load().VouchedFile(fi, sha) {
		return nil // unchanged since the cache wrote or last hashed it
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read binary cache entry %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("binary cache entry %s holds bytes with sha256 %s, not the sha256 its name says: it was changed or damaged after the core wrote it; check how, then remove it (the core copies a version in again when it is given its binary)", path, got)
	}
	c.pins.Load().Vouch(path, sha)
	return nil
}

// validSHA says whether s is a sha256 as the cache names files.
func validSHA(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// copyTrickled copies src into dst and returns the bytes copied, starting
// the write-back of every megabyte as it goes (like the engine's
// bytes-per-sync) after waiting for the last one's, so that about two
// megabytes at most are in the disk's queue before the store's log syncs,
// and the final fsync of a 20 MB plugin binary has little left to do: it
// does not stall those syncs, and with them every actor, for the length of
// one big flush.
func copyTrickled(dst *os.File, src io.Reader) (int64, error) {
	const chunk = 1 << 20
	buf := make([]byte, 64<<10)
	var off, flushed, waited int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return off, werr
			}
			off += int64(n)
			if off-flushed >= chunk {
				// From the last megabyte on: wait for its write-back
				// (started by the call before), and start this one's.
				_ = unix.SyncFileRange(int(dst.Fd()), waited, off-waited, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE)
				waited, flushed = flushed, off
			}
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// unchangedWhileRead checks that the source f, stat before the copy, gave
// exactly its size in bytes (n) and is still the same file with the same
// identity: a source rewritten while it was copied (a build still writing
// it) would give a cache entry of bytes no build made.
func unchangedWhileRead(f *os.File, before os.FileInfo, n int64) error {
	after, err := f.Stat()
	if err != nil {
		return err
	}
	id, ok := dynamic.IdentityOf(before)
	again, ok2 := dynamic.IdentityOf(after)
	if n != before.Size() || !ok || !ok2 || id != again {
		return errors.New("the binary changed while it was being copied (a build still writing it?): try again once it is written")
	}
	return nil
}

// hashFile returns the sha256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
