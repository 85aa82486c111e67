package etcdstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// The values are JSON: an etcd value is read over the network and the
// round trip, not the decoding, is what a write costs, and JSON keeps a
// store readable with etcdctl when something must be looked at by hand.

// actorRecord is the value of a/name.
type actorRecord struct {
	Behaviour string    `json:"behaviour"`
	Status    string    `json:"status,omitempty"`
	Created   time.Time `json:"created"`
	Origin    string    `json:"origin,omitempty"`
}

// cursorRecord is the value of c/name: what the actor's owner moves with
// each commit (the ack watermark, the dead-letter count and the version
// of the committed state), so that listing actors needs no state.
type cursorRecord struct {
	Acked  uint64 `json:"acked"`
	Dead   uint64 `json:"dead,omitempty"`
	Module string `json:"module,omitempty"`
	Schema uint32 `json:"schema,omitempty"`
}

// idRecord is the value of i/name\0msgid: the message the id was accepted
// for, its payload's digest and, once committed, its outcome.
type idRecord struct {
	Seq     uint64          `json:"seq"`
	Sum     string          `json:"sum"`
	Outcome mailbox.Outcome `json:"outcome,omitempty"`
	Reply   []byte          `json:"reply,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// timerRecord is the value of t/owner\0id.
type timerRecord struct {
	To      string    `json:"to"`
	Due     time.Time `json:"due"`
	Payload []byte    `json:"payload,omitempty"`
}

// deadRecord is the value of d/name\0seq.
type deadRecord struct {
	Message mailbox.Message `json:"message"`
	DeadAt  time.Time       `json:"dead_at"`
	To      string          `json:"to,omitempty"`
}

// encode renders a record; it fails only for a time outside years
// 0-9999 (a timer's due time, say), which the caller reports.
func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %T: %w", v, err)
	}
	return string(b), nil
}

// decode reads the JSON value of key into v; a value that does not parse
// is a *mailbox.CorruptError naming the key.
func (s *Store) decode(key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return &mailbox.CorruptError{Path: s.where(), Err: fmt.Errorf("key %q: %w", key, err)}
	}
	return nil
}

// decodeUint reads a decimal counter value (head, epoch, history next).
func (s *Store) decodeUint(key string, b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, &mailbox.CorruptError{Path: s.where(), Err: fmt.Errorf("key %q: %w", key, err)}
	}
	return n, nil
}

func uintValue(n uint64) string { return strconv.FormatUint(n, 10) }
