package etcdstore

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/graft-host/graft/mailbox"
)

// ErrUnavailable is wrapped by the errors of a call that could not reach
// a quorum of the cluster in time: nothing of it is known to be written,
// so a send may be retried with the same id.
var ErrUnavailable = errors.New("etcd cluster unavailable")

// QuotaError refuses a write because the etcd cluster's database reached
// its quota (--quota-backend-bytes): etcd then accepts only reads and
// deletes until an operator compacts, defragments and disarms the alarm.
// It wraps mailbox.ErrDiskFull, so the core waits and retries as it does
// for a full disk.
type QuotaError struct {
	// Where names the cluster and prefix.
	Where string
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("etcd %s: the cluster's database is over its quota (--quota-backend-bytes); nothing was stored: compact and defragment it and run `etcdctl alarm disarm`, or raise the quota; graft resumes by itself", e.Where)
}

// Unwrap makes errors.Is(err, mailbox.ErrDiskFull) hold.
func (e *QuotaError) Unwrap() error { return mailbox.ErrDiskFull }

// wrap turns an etcd client error into one that says what to do.
func (s *Store) wrap(what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s on %s: %w (%w)", what, s.where(), err, ErrUnavailable)
	case errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("%s: %w", what, &QuotaError{Where: s.where()})
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s on %s: the write is over the cluster's --max-request-bytes: nothing was stored; raise it on every member and store.max_request_bytes, or send smaller messages: %w", what, s.where(), mailbox.ErrTooLarge)
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%s on %s: the write is over the cluster's --max-txn-ops: nothing was stored; raise it on every member and store.max_txn_ops, or lower limits.batch_size: %w", what, s.where(), mailbox.ErrTooLarge)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost):
		return fmt.Errorf("%s on %s: %w: %w", what, s.where(), ErrUnavailable, err)
	}
	return fmt.Errorf("%s on %s: %w", what, s.where(), err)
}

// tooManyOps refuses, before sending it, a transaction over MaxTxnOps.
func (s *Store) tooManyOps(what string, n int) error {
	return fmt.Errorf("%s: the write needs %d operations in one etcd transaction, over store.max_txn_ops %d (etcd's --max-txn-ops): nothing was stored; raise --max-txn-ops on every member and store.max_txn_ops to match, or lower limits.batch_size: %w",
		what, n, s.cfg.MaxTxnOps, mailbox.ErrTooLarge)
}

// tooLarge refuses, before sending it, a transaction over MaxRequestBytes.
func (s *Store) tooLarge(what string, size int) error {
	return fmt.Errorf("%s: the write is about %d bytes in one etcd request, over store.max_request_bytes %d (etcd's --max-request-bytes): nothing was stored; raise --max-request-bytes on every member and store.max_request_bytes to match, or lower limits.batch_size or limits.max_state_size: %w",
		what, size, s.cfg.MaxRequestBytes, mailbox.ErrTooLarge)
}
