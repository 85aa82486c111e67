package etcdstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
	"github.com/graft-host/graft/mailbox/mailboxtest"
)

// The conformance suite's stores live under one prefix each (the test's
// folder name), on one real etcd member shared by the package's tests.
func TestConformance(t *testing.T) {
	m := etcdtest.Start(t)
	mailboxtest.Run(t, func(t *testing.T, dir string, opts mailbox.Options) mailbox.Store {
		return open(t, m.Endpoint, dir, opts)
	})
}

func open(t *testing.T, endpoint, dir string, opts mailbox.Options) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Prefix: "/graft" + dir, MaxTxnOps: etcdtest.MaxTxnOps}, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}
