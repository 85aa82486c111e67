package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// ErrUntrusted is matched (errors.Is) by every refusal of this package, so
// callers can tell "another user could have written this" from I/O errors.
var ErrUntrusted = errors.New("not trusted: another user could have written it")

// Error is a refusal: What (e.g. "store folder") at Path cannot be trusted
// because of At (Path itself, or a folder on its way), which has Problem;
// Fix says what to do.
type Error struct {
	What    string
	Path    string
	At      string
	Problem string
	Fix     string
}

// Error names the thing at fault first, then what is wrong and the fix.
func (e *Error) Error() string {
	if e.At == "" || e.At == e.Path {
		return fmt.Sprintf("%s %s %s: %s", e.What, e.Path, e.Problem, e.Fix)
	}
	return fmt.Sprintf("%s %s: the folder %s on its way %s: %s", e.What, e.Path, e.At, e.Problem, e.Fix)
}

// Unwrap makes errors.Is(err, ErrUntrusted) hold.
func (e *Error) Unwrap() error { return ErrUntrusted }

// me is the core's user: the effective uid, which owns what it creates.
func me() uint32 { return uint32(os.Geteuid()) }

// orRoot is how a message adds "or root" when the core is not root.
func orRoot() string {
	if me() == 0 {
		return ""
	}
	return " or root"
}

// who names a uid for an operator: "uid 65534 (nobody)".
func who(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// owner is the uid owning the file fi describes.
func owner(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0) // unknown: trusted by no rule
}

// octal is the mode as chmod(1) writes it, with the special bits: "1777".
func octal(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

// writers says who besides the owner may write: "", "group", "others" or
// "group and others".
func writers(m fs.FileMode) string {
	switch g, o := m&0o020 != 0, m&0o002 != 0; {
	case g && o:
		return "group and others"
	case g:
		return "group"
	case o:
		return "others"
	}
	return ""
}

// ownDir checks a folder the core keeps its state in.
func ownDir(path string, fi fs.FileInfo, what string) error {
	if !fi.IsDir() {
		return &Error{What: what, Path: path, Problem: "is not a folder", Fix: "move it away or point the config at a folder"}
	}
	if uid := owner(fi); uid != me() {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is owned by %s, not by the core's user %s, so that user could change what the core runs and believes", who(uid), who(me())),
			Fix:     fmt.Sprintf("check what it holds, then `chown -R %d %s`, or give the core a folder of its own", me(), path)}
	}
	if w := writers(fi.Mode()); w != "" {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is writable by %s (mode %s), so another user could change what the core runs and believes", w, octal(fi.Mode())),
			Fix:     fmt.Sprintf("check what it holds, then `chmod go-w %s`", path)}
	}
	return nil
}

// onTheWay checks a folder on the way to what the core trusts: whoever
// owns it or may write it (without the sticky bit) can replace what is in
// it.
func onTheWay(dir string, fi fs.FileInfo, what, path string) error {
	fail := func(problem, fix string) error {
		return &Error{What: what, Path: path, At: dir, Problem: problem, Fix: fix}
	}
	if !fi.IsDir() {
		return fail("is not a folder", "fix the path")
	}
	if uid := owner(fi); uid != 0 && uid != me() {
		return fail(fmt.Sprintf("is owned by %s, who could replace what is in it", who(uid)),
			fmt.Sprintf("`chown %d %s`%s, or keep the %s in a folder of the core's user", me(), dir, orRoot(), what))
	}
	if w := writers(fi.Mode()); w != "" && fi.Mode()&fs.ModeSticky == 0 {
		return fail(fmt.Sprintf("is writable by %s (mode %s) without the sticky bit, so they could replace what is in it", w, octal(fi.Mode())),
			fmt.Sprintf("`chmod go-w %s` (or `chmod +t %s` for a shared folder like /tmp)", dir, dir))
	}
	return nil
}

// Given checks a file the core is handed by path (a plugin binary, the
// config): it must be a regular file owned by the core's user or root and
// writable by no one else. fi should come from the open file (f.Stat), so
// that what is checked is what is read.
func Given(fi fs.FileInfo, path, what string) error {
	if !fi.Mode().IsRegular() {
		return &Error{What: what, Path: path, Problem: "is not a regular file", Fix: "point at the file itself"}
	}
	if uid := owner(fi); uid != 0 && uid != me() {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is owned by %s, not by the core's user %s%s, so that user could put anything in it", who(uid), who(me()), orRoot()),
			Fix:     fmt.Sprintf("check it, then `chown %d %s`", me(), path)}
	}
	if w := writers(fi.Mode()); w != "" {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is writable by %s (mode %s), so another user could put anything in it", w, octal(fi.Mode())),
			Fix:     fmt.Sprintf("check it, then `chmod go-w %s`", path)}
	}
	return nil
}

// own checks a file the core wrote itself, from its stat's mode (type
// and permission bits, as st_mode) and owner.
func own(stMode, uid uint32, path, what string) error {
	mode := fs.FileMode(stMode & 0o777)
	if stMode&syscall.S_IFMT != syscall.S_IFREG {
		return &Error{What: what, Path: path, Problem: "is not a regular file, so the core did not write it",
			Fix: fmt.Sprintf("check how it got there, then remove it (`rm %s`)", path)}
	}
	if uid != me() {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is owned by %s, not by the core's user %s, so the core did not write it", who(uid), who(me())),
			Fix:     fmt.Sprintf("check how it got there, then remove it (`rm %s`), or `chown %d %s` if you vouch for it", path, me(), path)}
	}
	if w := writers(mode); w != "" {
		return &Error{What: what, Path: path,
			Problem: fmt.Sprintf("is writable by %s (mode %s), so another user could have changed it", w, octal(mode)),
			Fix:     fmt.Sprintf("check it, then `chmod go-w %s`", path)}
	}
	return nil
}
