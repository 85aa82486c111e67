package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// Crash recovery of the newest write-ahead log, and why graft checks it
// before the engine replays it.
//
// After a crash the newest log may end in a torn write: the engine reads it
// up to the first record it cannot read and drops the rest, which is right
// for a torn tail and wrong for damage in the middle, after which the log
// goes on with acknowledged writes. The engine's format since
// FormatWALSyncChunks tells the two apart: every chunk records how far the
// log had been fsynced when it was written, so an intact chunk after the
// unreadable spot whose synced offset lies beyond that spot proves the
// spot was once durable, i.e. damaged. The engine looks for such a chunk
// only from the next 32 KiB block on; checkNewestWAL also looks in the rest
// of the damaged block, and refuses the store, naming the log, instead of
// letting the engine drop the writes. A tail with no such proof is a torn
// write and is replayed up to it, as the engine does.

// The engine's chunk format (github.com/cockroachdb/pebble/v2/record, whose
// constants are documented as wire format that does not change): checksum
// uint32, length uint16, encoding byte, log number uint32, synced offset
// uint64, then the payload; chunks never cross a 32 KiB block.
const (
	chunkBlockSize     = 32 << 10
	chunkHeaderSize    = 19
	chunkEncodingFirst = 9 // walSyncFullChunkEncoding; ...12 is walSyncLastChunkEncoding
	chunkEncodingLast  = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkNewestWAL reads the newest log of the store in dir the way the
// engine replays it and, if it ends unreadably, looks after that point for
// proof that it is damaged rather than torn.
func checkNewestWAL(dir string) error {
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil {
		return fmt.Errorf("list write-ahead logs: %w", err)
	}
	if len(logs) == 0 {
		return nil
	}
	ll := logs[len(logs)-1]
	_, path := ll.SegmentLocation(ll.NumSegments() - 1)
	name := filepath.Base(path)
	at, readErr := firstUnreadable(ll)
	if readErr == nil {
		return nil
	}
	if !record.IsInvalidRecord(readErr) {
		return fmt.Errorf("read write-ahead log %s: %w", name, readErr)
	}
	b, err := readStoreFile(filepath.Dir(path), name)
	if err != nil {
		return fmt.Errorf("read write-ahead log %s: %w", name, err)
	}
	if errors.Is(readErr, record.ErrInvalidChunk) || errors.Is(readErr, record.ErrZeroedChunk) ||
		syncedChunkAfter(b, at, uint32(ll.Num)) {
		return fmt.Errorf("write-ahead log %s is damaged at byte %d, and intact records after that point show the damaged bytes had been written and synced, so replaying it would drop acknowledged writes: %w",
			name, at, readErr)
	}
	return nil
}

// firstUnreadable returns the offset of the first record of ll that
// cannot be read and why, or a nil error if ll reads to its end.
func firstUnreadable(ll wal.LogicalLog) (int64, error) {
	r := ll.OpenForRead()
	defer r.Close()
	for {
		_, off, err := r.NextRecord()
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return off.Physical, err
		}
	}
}

// syncedChunkAfter reports whether b holds, after offset at, an intact
// chunk of log number logNum that was written after the log had been
// synced past at.
func syncedChunkAfter(b []byte, at int64, logNum uint32) bool {
	for q := int(at) + 1; q+chunkHeaderSize <= len(b); q++ {
		if enc := b[q+6]; enc < chunkEncodingFirst || enc > chunkEncodingLast {
			continue
		}
		if binary.LittleEndian.Uint32(b[q+7:]) != logNum {
			continue
		}
		end := q + chunkHeaderSize + int(binary.LittleEndian.Uint16(b[q+4:]))
		if end > len(b) || end > (q/chunkBlockSize+1)*chunkBlockSize {
			continue
		}
		if binary.LittleEndian.Uint32(b[q:]) != chunkChecksum(b[q+6:end]) {
			continue
		}
		if int64(binary.LittleEndian.Uint64(b[q+11:])) > at {
			return true
		}
	}
	return false
}

// chunkChecksum is the engine's masked CRC-32C of a chunk.
func chunkChecksum(p []byte) uint32 {
	c := crc32.Update(0, castagnoli, p)
	return (c>>15 | c<<17) + 0xa282ead8
}

// describeOpenError names the damaged write-ahead log when the engine
// refused to replay one: its own error carries the log's number only in
// details that do not print. An older log must read to its clean end, so
// the first older log that does not is the one at fault.
func describeOpenError(dir string, err error) error {
	if !pebble.IsCorruptionError(err) && !record.IsInvalidRecord(err) {
		return err
	}
	logs, serr := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if serr != nil {
		return err
	}
	for _, ll := range logs[:max(len(logs)-1, 0)] {
		at, rerr := firstUnreadable(ll)
		if rerr == nil {
			continue
		}
		_, path := ll.SegmentLocation(ll.NumSegments() - 1)
		return fmt.Errorf("write-ahead log %s is damaged at byte %d (%w), and only the newest log may end early: %w",
			filepath.Base(path), at, rerr, err)
	}
	return err
}
