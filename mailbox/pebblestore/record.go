package pebblestore

import (
	"encoding/json"
	"fmt"
	"time"
)

// The registry record's encoding. Records are written in the binary
// record format (codec.go) and read in it or as the JSON that stores
// written before it hold (a JSON record starts with '{', a binary one
// with its format byte): Open decodes every record, and JSON took 1.2 s
// of a million-actor start. A record written as JSON is rewritten in the
// binary format by the next change to it (a claim at the actor's start).
// A graft from before the binary format refuses such a store as corrupt
// rather than misreading it.

// encodeActorRecord is rec in the binary record format.
func encodeActorRecord(rec actorRecord) []byte {
	e := newEncoder(len(rec.Behaviour) + len(rec.Status) + len(rec.Origin) + 32)
	e.uvarint(rec.ID)
	e.str(rec.Behaviour)
	e.str(rec.Status)
	e.uvarint(rec.Epoch)
	var created uint64
	if !rec.CreatedAt.IsZero() {
		created = uint64(rec.CreatedAt.UnixNano())
	}
	e.uvarint(created)
	e.str(rec.Origin)
	return e.b
}

// decodeActorRecord reads a registry record of either encoding.
func decodeActorRecord(v []byte) (actorRecord, error) {
	var rec actorRecord
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &rec)
		return rec, err
	}
	d := newDecoder(v)
	rec.ID = d.uvarint()
	rec.Behaviour = d.str()
	rec.Status = d.str()
	rec.Epoch = d.uvarint()
	if ns := d.uvarint(); ns != 0 {
		rec.CreatedAt = time.Unix(0, int64(ns)).UTC()
	}
	rec.Origin = d.str()
	if err := d.done(); err != nil {
		return actorRecord{}, fmt.Errorf("actor record: %w", err)
	}
	return rec, nil
}
