package pebblestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

func historyKey(id uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixHistory
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

func seqOfHistory(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:9]) }

// AppendHistory implements mailbox.History.
func (s *Store) AppendHistory(ctx context.Context, rec mailbox.UpgradeRecord) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.histMu.Lock()
	defer s.histMu.Unlock()
	rec.ID = s.nextHist
	v, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode upgrade record of %q: %w", rec.Behaviour, err)
	}
	if err := s.set(historyKey(rec.ID), v, pebble.Sync, tierSend); err != nil {
		return 0, fmt.Errorf("append upgrade record of %q: %w", rec.Behaviour, err)
	}
	s.nextHist++
	return rec.ID, nil
}

// ListHistory implements mailbox.History.
func (s *Store) ListHistory(ctx context.Context) ([]mailbox.UpgradeRecord, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []mailbox.UpgradeRecord
	err := s.scan([]byte{prefixHistory}, func(k, v []byte) error {
		var rec mailbox.UpgradeRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("upgrade record %d: %w", seqOfHistory(k), err)}
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list upgrade history: %w", err)
	}
	return out, nil
}
