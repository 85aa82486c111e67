package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Cache holds the plugin binaries the core runs, each named by its
// sha256. The path a user rebuilds is only a source: the core copies a
// binary in when it accepts it and runs modules only from here, so a
// rebuild never disturbs a running module, and rollback or a restart in the
// middle of an upgrade always finds the old version's bytes.
type Cache struct {
	dir string
}

// OpenCache opens (creating) the cache folder dir.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create module cache %s: %w", dir, err)
	}
	return &Cache{dir: dir}, nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Path is where the binary with this sha256 is (or would be) cached.
func (c *Cache) Path(sha string) string { return filepath.Join(c.dir, sha) }

// Add copies the binary at src into the cache (if it is not there yet) and
// returns its cached path and sha256. The copy is written to a temporary
// file, fsynced and renamed, so a crash never leaves a half-written binary
// under a sha256 name.
func (c *Cache) Add(src string) (path, sha string, err error) {
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
		return "", "", fmt.Errorf("module cache %s: %w", c.dir, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	h := sha256.New()
	if err := copyTrickled(tmp, io.TeeReader(f, h)); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("copy %s into the module cache: %w", src, err)
	}
	if err := tmp.Chmod(0o700); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("copy %s into the module cache: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("copy %s into the module cache: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return "", "", fmt.Errorf("copy %s into the module cache: %w", src, err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	path = c.Path(sha)
	if _, err := os.Stat(path); err == nil {
		return path, sha, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("module cache %s: %w", c.dir, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", fmt.Errorf("copy %s into the module cache: %w", src, err)
	}
	if err := syncDir(c.dir); err != nil {
		return "", "", err
	}
	return path, sha, nil
}

// Has reports whether the binary with this sha256 is cached.
func (c *Cache) Has(sha string) bool {
	_, err := os.Stat(c.Path(sha))
	return err == nil
}

// copyTrickled copies src into dst, starting the write-back of every
// megabyte as it goes (like the engine's bytes-per-sync), so the final
// fsync of a 10 MB plugin binary does not stall the store's log fsyncs,
// and with them every actor, for the length of one big flush.
func copyTrickled(dst *os.File, src io.Reader) error {
	const chunk = 1 << 20
	buf := make([]byte, 64<<10)
	var off, flushed int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			off += int64(n)
			if off-flushed >= chunk {
				_ = unix.SyncFileRange(int(dst.Fd()), flushed, off-flushed, unix.SYNC_FILE_RANGE_WRITE)
				flushed = off
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
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
