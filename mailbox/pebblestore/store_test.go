package pebblestore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/mailboxtest"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

func openStore(t *testing.T, dir string, opts mailbox.Options) mailbox.Store {
	t.Helper()
	s, err := pebblestore.Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceSync(t *testing.T) {
	mailboxtest.Run(t, openStore)
}

func TestConformanceRelaxed(t *testing.T) {
	mailboxtest.Run(t, func(t *testing.T, dir string, opts mailbox.Options) mailbox.Store {
		opts.Durability = mailbox.DurabilityRelaxed
		return openStore(t, dir, opts)
	})
}
