package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ChunkSize is the size of one stored piece of a binary: well under
// etcd's default request limit (1.5 MiB), so that no member needs a
// raised --max-request-bytes for it.
const ChunkSize = 512 << 10

// binaryMeta is the value of bin/SHA/meta.
type binaryMeta struct {
	Size   int64 `json:"size"`
	Chunks int   `json:"chunks"`
	// Stored is when it was stored: sweep keeps a binary no announcement
	// names for Config.SweepAfter, for the announcement that follows it.
	Stored time.Time `json:"stored,omitzero"`
}

func (r *Rollout) binKey(sha string) string  { return r.prefix + "bin/" + sha + "/" }
func (r *Rollout) metaKey(sha string) string { return r.binKey(sha) + "meta" }
func (r *Rollout) chunkKey(sha string, i int) string {
	return fmt.Sprintf("%sc/%06d", r.binKey(sha), i)
}

// publishBinary stores the binary at path under sha, unless it is there.
// The meta key goes last, so a reader that finds it finds every chunk.
func (r *Rollout) publishBinary(ctx context.Context, sha, path string) error {
	resp, err := r.client.Get(ctx, r.metaKey(sha))
	if err != nil {
		return fmt.Errorf("look for binary %s in etcd: %w", sha, err)
	}
	if len(resp.Kvs) > 0 {
		// There: mark it stored now, guarded by the meta read, so that a
		// sweep that read the old meta cannot delete it under the
		// announcement that follows. A sweep that deleted it first makes
		// the guard fail, and the binary is stored again below.
		kv := resp.Kvs[0]
		var meta binaryMeta
		if json.Unmarshal(kv.Value, &meta) == nil {
			meta.Stored = time.Now().UTC()
			b, err := json.Marshal(meta)
			if err != nil {
				return fmt.Errorf("publish binary %s: %w", sha, err)
			}
			k := r.metaKey(sha)
			tr, err := r.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).Then(clientv3.OpPut(k, string(b))).Commit()
			if err != nil {
				return fmt.Errorf("publish binary %s: %w", sha, err)
			}
			if tr.Succeeded {
				return nil
			}
		}
	}
	f, err := os.Open(path) //nolint:gosec // G304: the upgrade manager's own cache file
	if err != nil {
		return fmt.Errorf("publish binary %s: %w", sha, err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	var meta binaryMeta
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, perr := r.client.Put(ctx, r.chunkKey(sha, meta.Chunks), string(buf[:n])); perr != nil {
				return fmt.Errorf("publish binary %s, chunk %d: %w", sha, meta.Chunks, perr)
			}
			meta.Chunks++
			meta.Size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("publish binary %s: read %s: %w", sha, path, err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("publish binary %s: %s has sha256 %s now: the cache file changed", sha, path, got)
	}
	meta.Stored = time.Now().UTC()
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("publish binary %s: %w", sha, err)
	}
	if _, err := r.client.Put(ctx, r.metaKey(sha), string(b)); err != nil {
		return fmt.Errorf("publish binary %s: %w", sha, err)
	}
	return nil
}

// fetchBinary writes the binary stored under sha to a new file of its
// own in dir (mode 0700) and returns its path; the caller removes it. The
// bytes are checked against sha, so what etcd holds cannot run as
// something else.
func (r *Rollout) fetchBinary(ctx context.Context, sha, dir string) (string, error) {
	resp, err := r.client.Get(ctx, r.metaKey(sha))
	if err != nil {
		return "", fmt.Errorf("fetch binary %s: %w", sha, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("fetch binary %s: not in etcd (%s): the member that announced it has not stored it", sha, r.metaKey(sha))
	}
	var meta binaryMeta
	if err := json.Unmarshal(resp.Kvs[0].Value, &meta); err != nil {
		return "", fmt.Errorf("fetch binary %s: meta %s: %w", sha, r.metaKey(sha), err)
	}
	f, err := os.CreateTemp(dir, "rollout-*")
	if err != nil {
		return "", fmt.Errorf("fetch binary %s: %w", sha, err)
	}
	path := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return "", fmt.Errorf("fetch binary %s: %w", sha, err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	for i := range meta.Chunks {
		c, err := r.client.Get(ctx, r.chunkKey(sha, i))
		if err != nil {
			return fail(err)
		}
		if len(c.Kvs) == 0 {
			return fail(fmt.Errorf("chunk %d of %d missing", i, meta.Chunks))
		}
		if _, err := w.Write(c.Kvs[0].Value); err != nil {
			return fail(err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fail(fmt.Errorf("the stored bytes have sha256 %s", got))
	}
	if err := f.Chmod(0o700); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	return filepath.Clean(path), nil
}

// dropBinary deletes a binary no announcement needs any more.
func (r *Rollout) dropBinary(ctx context.Context, sha string) error {
	if _, err := r.client.Delete(ctx, r.binKey(sha), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("drop binary %s: %w", sha, err)
	}
	return nil
}

// sweep deletes the binaries that no announcement names (as what runs or
// as the version before) and that were stored more than SweepAfter ago:
// a canary's that was rolled back, the one of a publish that lost its
// race to another member's. A binary stored moments ago, whose
// announcement is on its way, is left. A member whose op needs a swept
// binary again (a canary promoted after a bake longer than SweepAfter)
// stores it again when it announces.
func (r *Rollout) sweep(ctx context.Context) error {
	anns, err := r.client.Get(ctx, r.prefix+"u/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("sweep binaries: read the announcements: %w", err)
	}
	named := map[string]bool{}
	for _, kv := range anns.Kvs {
		var a announcement
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			// One this member cannot read may name any binary: keep them all.
			return fmt.Errorf("sweep binaries: announcement %s does not parse, so every binary is kept: %w", kv.Key, err)
		}
		named[a.SHA], named[a.Prev] = true, true
	}
	bins, err := r.client.Get(ctx, r.prefix+"bin/", clientv3.WithPrefix(), clientv3.WithKeysOnly()) // not the chunks' bytes
	if err != nil {
		return fmt.Errorf("sweep binaries: %w", err)
	}
	for _, kv := range bins.Kvs {
		k := strings.TrimPrefix(string(kv.Key), r.prefix+"bin/")
		sha, rest, _ := strings.Cut(k, "/")
		if rest != "meta" || named[sha] {
			continue
		}
		mv, err := r.client.Get(ctx, r.metaKey(sha))
		if err != nil {
			return fmt.Errorf("sweep binaries: %w", err)
		}
		var meta binaryMeta
		if len(mv.Kvs) == 0 || json.Unmarshal(mv.Kvs[0].Value, &meta) != nil || meta.Stored.IsZero() || time.Since(meta.Stored) < r.cfg.SweepAfter {
			continue // gone, unreadable, of a graft that kept no time, or young: kept
		}
		// Guarded by the meta read: a publish that marked it stored again
		// since (an announcement on its way) keeps it.
		mk := r.metaKey(sha)
		tr, err := r.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(mk), "=", mv.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(r.binKey(sha), clientv3.WithPrefix())).Commit()
		if err != nil {
			return fmt.Errorf("sweep binary %s: %w", sha, err)
		}
		if tr.Succeeded {
			r.log.Info("cluster rollout: deleted a binary no announcement names", "sha256", sha, "stored", meta.Stored)
		}
	}
	return nil
}
