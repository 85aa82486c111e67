package dynamic

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Pins remembers the plugin binaries whose sha256 pin was checked, by the
// identity of the file (device, inode, size, modification and change
// times), so that a binary started again unchanged is not read and hashed
// again: a module restarted after a crash, an actor's private process, or
// a version that the upgrade cache has just written and hashed itself
// (Vouch). Hashing a 20 MB binary is 15-20 ms of CPU, spent while the
// running actors want it. Any write to a file, or change of its mode or
// owner, moves its change time, which no one but root can set back; a file
// replaced by another has another inode. So a remembered identity is the
// bytes that were hashed. One Pins serves one core; the zero value is not
// usable, and a nil *Pins remembers nothing (every start hashes).
type Pins struct {
	mu    sync.Mutex
	known map[FileIdentity]string // identity -> sha256 (lowercase hex)
}

// NewPins returns an empty memo.
func NewPins() *Pins { return &Pins{known: map[FileIdentity]string{}} }

// FileIdentity is what changes when a regular file's bytes may have: its
// device and inode (another file put in its place), size, and modification
// and change times (a write, a mode or owner change; the change time no
// one but root can set back). Two equal identities of a file taken at two
// instants mean its bytes did not change between them.
type FileIdentity struct {
	dev, ino, size   uint64
	mtimeNs, ctimeNs int64
}

// IdentityOf is the identity of the regular file fi describes (fi from
// os.Stat, os.Lstat or File.Stat); ok is false for anything else.
func IdentityOf(fi os.FileInfo) (id FileIdentity, ok bool) {
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat || !fi.Mode().IsRegular() {
		return FileIdentity{}, false
	}
	return FileIdentity{dev: st.Dev, ino: st.Ino, size: uint64(st.Size),
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}, true
}

// identify is the identity of the file at path, not following a last
// symbolic link (a link's target may change without the link's identity
// doing so).
func identify(path string) (FileIdentity, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return FileIdentity{}, err
	}
	id, ok := IdentityOf(fi)
	if !ok {
		return FileIdentity{}, fmt.Errorf("%s is not a regular file", path)
	}
	return id, nil
}

// Vouched says whether the file at path is, as it is now, one whose bytes
// were hashed or vouched for with sha256 sha.
func (p *Pins) Vouched(path, sha string) bool {
	if p == nil {
		return false
	}
	id, err := identify(path)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	known, ok := p.known[id]
	return ok && strings.EqualFold(known, sha)
}

// Vouch records that the file at path, as it is now, holds bytes with
// sha256 sha: for a caller that hashed exactly those bytes itself (the
// upgrade cache, which wrote them into a folder only the core's user may
// write). A path that cannot be stated is not recorded.
func (p *Pins) Vouch(path, sha string) {
	if p == nil {
		return
	}
	id, err := identify(path)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.known[id] = strings.ToLower(sha)
	p.mu.Unlock()
}

// sha256Of returns the sha256 of the file at path: remembered, if the file
// is as it was when it was last hashed or vouched for, or else read and
// hashed (and remembered if the file did not change while it was read).
// An unreadable file gives a text naming why, which no pin equals.
func (p *Pins) sha256Of(path string) string {
	before, err := identify(path)
	if err == nil && p != nil {
		p.mu.Lock()
		sha, ok := p.known[before]
		p.mu.Unlock()
		if ok {
			return sha
		}
	}
	sha := fileSHA256(path)
	if after, aerr := identify(path); p != nil && err == nil && aerr == nil && after == before && !strings.HasPrefix(sha, "(") {
		p.mu.Lock()
		p.known[before] = sha
		p.mu.Unlock()
	}
	return sha
}

// fileSHA256 hashes the file at path; an unreadable file gives a text
// naming why, which no pin equals.
func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return hex.EncodeToString(h.Sum(nil))
}
