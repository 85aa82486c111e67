package trust

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// CheckDir checks the folder at path, which the core keeps its state in
// (what names it in errors: "store folder"), and every folder on its way.
// A path that does not exist yet is fine when the nearest existing folder
// on its way is safe: the core creates the rest as its own.
func CheckDir(path, what string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		parent, err := nearestExisting(abs)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, abs, err)
		}
		return checkWay(parent, true, what, abs)
	} else if err != nil {
		return fmt.Errorf("%s %s: %w", what, abs, err)
	}
	wayErr := checkWay(abs, false, what, abs)
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, abs, err)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, abs, err)
	}
	return errors.Join(wayErr, ownDir(abs, fi, what)) // both, so one pass fixes them
}

// EnsureDir is CheckDir, creating the folder (0700, with any missing
// parents) when it does not exist yet.
func EnsureDir(path, what string) error {
	if err := CheckDir(path, what); err != nil {
		return err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	return CheckDir(path, what)
}

// GivenFile checks a file the core reads by path (the config): the file
// as Given, and every folder on its way.
func GivenFile(path, what string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, abs, err)
	}
	return errors.Join(checkWay(abs, false, what, abs), Given(fi, abs, what))
}

// OpenOwn opens, for reading, a file the core wrote itself and reads back
// (a cached module, the upgrade journal): without following a symbolic
// link, and only if it is a regular file owned by the core's user that no
// one else may write. A missing file gives an error matching
// fs.ErrNotExist.
func OpenOwn(path, what string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, &Error{What: what, Path: path,
			Problem: "is a symbolic link, and the core does not follow links here (it could point at a file another user controls)",
			Fix:     fmt.Sprintf("check where it points, then remove it (`rm %s`)", path)}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open " + what, Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, &fs.PathError{Op: "stat " + what, Path: path, Err: err}
	}
	if err := own(st.Mode, st.Uid, path, what); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil { // only there so a FIFO could not block the open
		_ = unix.Close(fd)
		return nil, &fs.PathError{Op: "open " + what, Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// nearestExisting is the deepest folder on the way to abs that exists.
func nearestExisting(abs string) (string, error) {
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return "", err
		}
	}
}

// checkWay checks every folder on the way to abs (and abs itself when
// self): each folder of its resolved path and, for every symbolic link on
// the way, each folder of the resolved path of the folder holding it.
// Every folder at fault is reported, from the root down.
func checkWay(abs string, self bool, what, path string) error {
	dirs, err := wayTo(abs, self)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	var errs []error
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		errs = append(errs, onTheWay(d, fi, what, path))
	}
	return errors.Join(errs...)
}

// wayTo lists the real folders whose owners could replace abs, shortest
// first.
func wayTo(abs string, self bool) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		for {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
			if d == filepath.Dir(d) {
				return
			}
			d = filepath.Dir(d)
		}
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	if self {
		add(real)
	} else if real != filepath.Dir(real) {
		add(filepath.Dir(real))
	}
	for q := filepath.Dir(abs); ; q = filepath.Dir(q) {
		rq, err := filepath.EvalSymlinks(q)
		if err != nil {
			return nil, err
		}
		add(rq)
		if q == filepath.Dir(q) {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(len(a), len(b)) })
	return out, nil
}

// ReadSecret reads a file holding a secret (a token, a password, a TLS
// key) named by the operator: it must be a regular file, owned by the
// core's user or root, that no other user may read or write: a secret
// others can read is none, and one they can write is theirs.
func ReadSecret(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file: give the file that holds the secret", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %04o: other users can read or change it, so it is no secret; `chmod 600 %s`", what, path, perm, path)
	}
	if st, ok := fi.Sys().(*unix.Stat_t); ok && st.Uid != uint32(os.Geteuid()) && st.Uid != 0 {
		return nil, fmt.Errorf("%s %s belongs to user %d, not to this core's user %d nor root: `chown` it to the user graft runs as", what, path, st.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}
