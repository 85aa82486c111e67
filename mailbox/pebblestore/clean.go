package pebblestore

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The clean-shutdown marker, and why: after a crash the newest write-ahead
// log may end in a torn write, which the engine (rightly) tolerates; but
// after a clean shutdown there is no torn write, so any damage to a log is
// damage, and a tolerant replay would silently drop what follows it. Close
// therefore flushes the memtables to table files (the logs then hold
// nothing the tables do not), closes the engine, and writes cleanFile:
// every log's name, size and CRC-32C, and a digest of every actor's
// counters. Open, finding the marker, refuses a store whose logs differ in
// any way, naming the file, and after loading refuses one whose counters
// differ; only then is the marker removed. A store without the marker was
// not shut down cleanly and gets crash recovery (see waltail.go).
const cleanFile = "graft-clean.json"

// cleanMarker is the marker's file format.
type cleanMarker struct {
	Version  int       `json:"version"`
	ClosedAt time.Time `json:"closed_at"`
	// WALs are the logs at the clean shutdown; nil once Open verified them
	// (the engine changes them as it opens), with WALsVerified set.
	WALs         []cleanWAL `json:"wals,omitempty"`
	WALsVerified bool       `json:"wals_verified,omitempty"`
	Counters     counters   `json:"counters"`
}

type cleanWAL struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// counters sum up what the store holds: every actor's ack watermark and
// last stored sequence number, and the upgrade history.
type counters struct {
	Actors   int    `json:"actors"`
	Acked    uint64 `json:"acked"`    // sum of ack watermarks
	Messages uint64 `json:"messages"` // sum of last sequence numbers
	History  uint64 `json:"history"`  // next history id
	// Timers counts the pending timers; in the digest only when not zero,
	// so the digest of a store without timers is what it was before them.
	Timers int    `json:"timers,omitempty"`
	Digest string `json:"digest"` // sha256 over every actor's counters
}

// actorCounters is one actor's part of the digest.
type actorCounters struct {
	name        string
	id          uint64
	acked, last uint64
}

// Versions of the clean-shutdown marker: they differ only in the order
// the digest takes the actors in. Version 1 sorted a million names at
// every open and clean close (0.45 s); version 2 sorts by id. Both are
// read; version 2 is written.
const (
	cleanByName = 1
	cleanByID   = 2
)

// summarize sums up the actors' counters and digests them in the order
// the marker version says.
func summarize(actors []actorCounters, nextHist uint64, timers, version int) counters {
	if version == cleanByName {
		slices.SortFunc(actors, func(x, y actorCounters) int { return strings.Compare(x.name, y.name) })
	} else {
		slices.SortFunc(actors, func(x, y actorCounters) int { return cmp.Compare(x.id, y.id) })
	}
	h := sha256.New()
	c := counters{Actors: len(actors), History: nextHist, Timers: timers}
	var line []byte
	for _, a := range actors {
		// The line fmt's "%q %d %d %d\n" makes, built without fmt: this
		// runs for every actor at each open and clean close.
		line = strconv.AppendQuote(line[:0], a.name)
		line = append(line, ' ')
		line = strconv.AppendUint(line, a.id, 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, a.acked, 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, a.last, 10)
		line = append(line, '\n')
		h.Write(line)
		c.Acked += a.acked
		c.Messages += a.last
	}
	fmt.Fprintf(h, "history %d\n", nextHist)
	if timers > 0 {
		fmt.Fprintf(h, "timers %d\n", timers)
	}
	c.Digest = hex.EncodeToString(h.Sum(nil))
	return c
}

// readClean returns the store's clean-shutdown marker, or nil if it has none.
func readClean(dir string) (*cleanMarker, error) {
	b, err := readStoreFile(dir, cleanFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the clean-shutdown marker %s: %w", cleanFile, err)
	}
	var m cleanMarker
	err = json.Unmarshal(b, &m)
	if err == nil && m.Version != cleanByName && m.Version != cleanByID {
		err = fmt.Errorf("version %d is not one this graft reads", m.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("the clean-shutdown marker %s is damaged: %w", cleanFile, err)
	}
	return &m, nil
}

// walSums describes every log in dir, for the marker.
func walSums(dir string) ([]cleanWAL, error) {
	names, err := listWALs(dir)
	if err != nil {
		return nil, err
	}
	out := make([]cleanWAL, 0, len(names))
	for _, n := range names {
		w, err := sumFile(dir, n)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func sumFile(dir, name string) (cleanWAL, error) {
	f, err := openStoreFile(dir, name)
	if err != nil {
		return cleanWAL{}, fmt.Errorf("checksum %s: %w", name, err)
	}
	defer f.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(h, f)
	if err != nil {
		return cleanWAL{}, fmt.Errorf("checksum %s: %w", name, err)
	}
	return cleanWAL{Name: name, Size: n, CRC32C: h.Sum32()}, nil
}

// verifyWALs compares the logs in dir with the marker's, and names the
// first that differs.
func (m *cleanMarker) verifyWALs(dir string) error {
	present, err := listWALs(dir)
	if err != nil {
		return err
	}
	at := m.ClosedAt.Format(time.RFC3339)
	for _, w := range m.WALs {
		if !slices.Contains(present, w.Name) {
			return fmt.Errorf("write-ahead log %s is missing: it was there when the store was shut down cleanly at %s", w.Name, at)
		}
		got, err := sumFile(dir, w.Name)
		if err != nil {
			return err
		}
		switch {
		case got.Size < w.Size:
			return fmt.Errorf("write-ahead log %s was truncated after the clean shutdown at %s: %d bytes, it had %d", w.Name, at, got.Size, w.Size)
		case got.Size != w.Size:
			return fmt.Errorf("write-ahead log %s was changed after the clean shutdown at %s: %d bytes, it had %d", w.Name, at, got.Size, w.Size)
		case got.CRC32C != w.CRC32C:
			return fmt.Errorf("write-ahead log %s was changed after the clean shutdown at %s: its checksum differs (damaged bytes)", w.Name, at)
		}
	}
	for _, p := range present {
		if !slices.ContainsFunc(m.WALs, func(w cleanWAL) bool { return w.Name == p }) {
			return fmt.Errorf("write-ahead log %s appeared after the clean shutdown at %s: it was not written by this store", p, at)
		}
	}
	return nil
}

// verifyCounters compares what the store loaded with what it held at its
// clean shutdown.
func (m *cleanMarker) verifyCounters(got counters) error {
	want := m.Counters
	if got == want {
		return nil
	}
	var diffs []string
	if got.Actors != want.Actors {
		diffs = append(diffs, fmt.Sprintf("%d actors, it had %d", got.Actors, want.Actors))
	}
	if got.Messages != want.Messages {
		diffs = append(diffs, fmt.Sprintf("messages up to a total sequence number of %d, it had %d", got.Messages, want.Messages))
	}
	if got.Acked != want.Acked {
		diffs = append(diffs, fmt.Sprintf("acks up to a total of %d, it had %d", got.Acked, want.Acked))
	}
	if got.Timers != want.Timers {
		diffs = append(diffs, fmt.Sprintf("%d pending timers, it had %d", got.Timers, want.Timers))
	}
	if got.History != want.History {
		diffs = append(diffs, fmt.Sprintf("%d upgrade records, it had %d", got.History-1, want.History-1))
	}
	if len(diffs) == 0 {
		diffs = append(diffs, "an actor's counters differ")
	}
	return fmt.Errorf("it does not hold what it held when it was shut down cleanly at %s: %s (a table or manifest file was replaced or lost)",
		m.ClosedAt.Format(time.RFC3339), strings.Join(diffs, "; "))
}
