package config_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/mailbox"
)

func TestEtcdStoreLoads(t *testing.T) {
	path := writeConfig(t, `store:
  path: d
  backend: etcd
  endpoints: [http://127.0.0.1:2379, http://127.0.0.1:22379]
  prefix: /graft/shop
  dial_timeout: 2s
  max_txn_ops: 1024
  max_request_bytes: 4MiB
`)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, config.BackendEtcd, cfg.Store.Backend)
	assert.Equal(t, config.Etcd{Endpoints: []string{"http://127.0.0.1:2379", "http://127.0.0.1:22379"}, Prefix: "/graft/shop",
		DialTimeout: 2 * time.Second, MaxTxnOps: 1024, MaxRequestBytes: 4 << 20}, cfg.Store.Etcd)
	assert.Equal(t, filepath.Join(filepath.Dir(path), "d", "modules"), cfg.BinaryCacheDir(), "the module cache stays local")

	def, err := config.Load(writeConfig(t, "store: {path: d}\n"))
	require.NoError(t, err)
	assert.Equal(t, config.BackendPebble, def.Store.Backend, "pebble is the default and needs nothing")
}

// Every mistake in the store section is one problem naming its key and
// saying what to write instead.
func TestBadEtcdStoreIsNamed(t *testing.T) {
	cases := []struct{ body, key, says string }{
		{"store: {path: d, backend: etcd, prefix: /graft/x}\n", "store", "store.endpoints is missing"},
		{"store: {path: d, backend: etcd, endpoints: [http://127.0.0.1:2379]}\n", "store", "store.prefix is missing"},
		{"store: {path: d, backend: etcd, endpoints: [127.0.0.1:2379], prefix: /graft/x}\n", "store.endpoints", "is not a client URL"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: graft/x}\n", "store.prefix", "must start with /"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /graft/x/}\n", "store.prefix", "must not end with /"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /}\n", "store.prefix", "prefix of its own"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, durability: relaxed}\n", "store.durability", "embedded store only"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, username: u}\n", "store.username", "go together"},
		{"store: {path: d, backend: etcd, endpoints: [https://h:1], prefix: /g, tls: {cert_file: c}}\n", "store.tls", "go together"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, tls: {ca_file: c}}\n", "store.endpoints", "use https endpoints"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, max_request_bytes: 1MiB}\n", "store.max_request_bytes", "cannot carry a message"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, max_txn_ops: 4}\n", "store.max_txn_ops", "at least 16"},
		{"store: {path: d, backend: zookeeper}\n", "store.backend", "not one of etcd, pebble"},
		{"store: {path: d, endpoints: [http://h:1]}\n", "store.endpoints", "backend: etcd only"},
		{"store: {path: d, backend: etcd, endpoints: [http://h:1], prefix: /g, tls: {ca: x}}\n", "store.tls.ca", "unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.key+" "+tc.says, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, tc.body))
			require.Error(t, err)
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
			require.Len(t, ce.Problems, 1, "one problem: %v", err)
			assert.Equal(t, tc.key, ce.Problems[0].Key)
			assert.Contains(t, ce.Problems[0].Message, tc.says)
		})
	}
}

// The password file is a secret: one that other users can read is
// refused with the config's other problems, by name, before anything
// connects; and again when the store opens (it may change meanwhile).
func TestEtcdPasswordFileMustBePrivate(t *testing.T) {
	path := writeConfig(t, "store: {path: d, backend: etcd, endpoints: [http://127.0.0.1:1], prefix: /g, username: graft, password_file: pw}\n")
	pw := filepath.Join(filepath.Dir(path), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o644))
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store.password_file")
	assert.Contains(t, err.Error(), "chmod 600")
	assert.False(t, strings.Contains(err.Error(), "s3cret"), "the secret is never printed")

	require.NoError(t, os.Chmod(pw, 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(pw, 0o640))
	_, err = cfg.Core(slog.Default(), nil).OpenStore(mailbox.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chmod 600")
}

// On etcd a batch is cut to what the members' --max-txn-ops holds in one
// commit; the embedded store keeps limits.batch_size.
func TestEtcdBatchFitsTheTransactionLimit(t *testing.T) {
	for _, tc := range []struct {
		ops, want int
	}{{0, 19}, {128, 19}, {352, 64}, {4096, 64}, {40, 1}} {
		body := "store: {path: d, backend: etcd, endpoints: [http://127.0.0.1:2379], prefix: /g}\n"
		if tc.ops != 0 {
			body = fmt.Sprintf("store: {path: d, backend: etcd, endpoints: [http://127.0.0.1:2379], prefix: /g, max_txn_ops: %d}\n", tc.ops)
		}
		cfg, err := config.Load(writeConfig(t, body))
		require.NoError(t, err)
		assert.Equal(t, tc.want, cfg.Core(slog.Default(), nil).BatchSize, "max_txn_ops %d", tc.ops)
	}
	cfg, err := config.Load(writeConfig(t, "store: {path: d}\n"))
	require.NoError(t, err)
	assert.Equal(t, 64, cfg.Core(slog.Default(), nil).BatchSize)
}
