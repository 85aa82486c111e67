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
// (Vouch, once the cache is attached to the core). Hashing a 20 MB binary
// is 15-20 ms of CPU, spent while the running actors want it.
//
// A write through write(2), or a change of mode or owner, moves a file's
// change time, which no one but root can set back, and a file put in
// another's place has another inode. That is not every write: a write
// through a shared mapping may move the times late, and a rewrite of the
// same size within one tick of the file system's clock keeps them. So
// only files that no one but the core's own user (or root) can write are
// remembered; a binary anyone else may write (the case a pin is for) is
// hashed at every start. One Pins serves one core; a nil *Pins remembers
// nothing.
type Pins struct {
	mu    sync.Mutex
	known map[FileIdentity]string // identity -> sha256 (lowercase hex)
}

// NewPins returns an empty memo.
func NewPins() *Pins { return &Pins{known: map[FileIdentity]string{}} }

// remember records id as holding sha, for a file fi that only the core's
// own user or root may write; the caller holds p.mu.
func (p *Pins) rememberLocked(fi os.FileInfo, id FileIdentity, sha string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (st.Uid != uint32(os.Geteuid()) && st.Uid != 0) || fi.Mode().Perm()&0o022 != 0 {
		return // others may write it: hashed at every start
	}
	if p.known == nil {
		p.known = map[FileIdentity]string{}
	}
	p.known[id] = strings.ToLower(sha)
}

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

// identify is the stat and identity of the file at path, not following a
// last symbolic link (a link's target may change without the link's
// identity doing so).
func identify(path string) (os.FileInfo, FileIdentity, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, FileIdentity{}, err
	}
	id, ok := IdentityOf(fi)
	if !ok {
		return nil, FileIdentity{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fi, id, nil
}

// Vouched says whether the file at path is, as it is now, one whose bytes
// were hashed or vouched for with sha256 sha.
func (p *Pins) Vouched(path, sha string) bool {
	fi, err := os.Lstat(path)
	return err == nil && p.VouchedFile(fi, sha)
}

// VouchedFile is Vouched for the file fi describes (the stat of a file
// already open, so that what is judged is what is read).
func (p *Pins) VouchedFile(fi os.FileInfo, sha string) bool {
	id, ok := IdentityOf(fi)
	if p == nil || !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	known, found := p.known[id]
	return found && strings.EqualFold(known, sha)
}

// Vouch records that the file at path, as it is now, holds bytes with
// sha256 sha: for a caller that hashed exactly those bytes itself (the
// upgrade cache, which wrote them into a folder only the core's user may
// write). A path that cannot be stated is not recorded.
func (p *Pins) Vouch(path, sha string) {
	if p == nil {
		return
	}
	fi, id, err := identify(path)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.rememberLocked(fi, id, sha)
	p.mu.Unlock()
}

// sha256Of returns the sha256 of the file at path: remembered, if the file
// is as it was when it was last hashed or vouched for, or else read and
// hashed (and remembered if the file did not change while it was read).
// An unreadable file gives a text naming why, which no pin equals.
func (p *Pins) sha256Of(path string) string {
	fi, before, err := identify(path)
	if err == nil && p != nil {
		p.mu.Lock()
		sha, ok := p.known[before]
		p.mu.Unlock()
		if ok {
			return sha
		}
	}
	sha := fileSHA256(path)
	if _, after, aerr := identify(path); p != nil && err == nil && aerr == nil && after == before && !strings.HasPrefix(sha, "(") {
		p.mu.Lock()
		p.rememberLocked(fi, before, sha)
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
