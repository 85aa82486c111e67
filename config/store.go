package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// Backends of the store section (store.backend).
const (
	// BackendPebble is the embedded store, in store.path (the default).
	BackendPebble = "pebble"
	// BackendEtcd keeps the store in an etcd cluster (store.endpoints,
	// store.prefix); store.path still holds this core's module cache and
	// upgrade journal.
	BackendEtcd = "etcd"
)

// Etcd is the etcd part of the store section, used when store.backend is
// etcd.
type Etcd struct {
	// Endpoints are the members' client URLs.
	Endpoints []string
	// Prefix is the store's key prefix, /graft/NAME.
	Prefix string
	// DialTimeout bounds the first connection.
	DialTimeout time.Duration
	// Username and PasswordFile authenticate to a cluster with auth on;
	// the password is read from the file, which only its owner may read.
	Username, PasswordFile string
	// CAFile, CertFile and KeyFile are the TLS settings of https
	// endpoints, as etcdctl's --cacert, --cert and --key; ServerName
	// overrides the name checked in the members' certificates.
	CAFile, CertFile, KeyFile, ServerName string
	// MaxTxnOps and MaxRequestBytes are the cluster's --max-txn-ops and
	// --max-request-bytes.
	MaxTxnOps, MaxRequestBytes int
}

// decodeStore reads the store section.
func (d *decoder) decodeStore(cfg *Config, n *yaml.Node, key string) {
	e := &cfg.Store.Etcd
	d.mapping(n, key,
		field{"path", d.path(&cfg.Store.Path)},
		field{"durability", oneOf(d, &cfg.Store.Durability, map[string]mailbox.Durability{
			"sync": mailbox.DurabilitySync, "relaxed": mailbox.DurabilityRelaxed})},
		field{"backend", oneOf(d, &cfg.Store.Backend, map[string]string{BackendPebble: BackendPebble, BackendEtcd: BackendEtcd})},
		field{"endpoints", d.strings(&e.Endpoints)},
		field{"prefix", d.str(&e.Prefix)},
		field{"dial_timeout", d.duration(&e.DialTimeout)},
		field{"username", d.str(&e.Username)},
		field{"password_file", d.path(&e.PasswordFile)},
		field{"tls", func(n *yaml.Node, key string) {
			d.mapping(n, key,
				field{"ca_file", d.path(&e.CAFile)},
				field{"cert_file", d.path(&e.CertFile)},
				field{"key_file", d.path(&e.KeyFile)},
				field{"server_name", d.str(&e.ServerName)},
			)
		}},
		field{"max_txn_ops", d.count(&e.MaxTxnOps, 16)},
		field{"max_request_bytes", d.size(&e.MaxRequestBytes)},
	)
}

// checkStore checks the store section as a whole: the etcd keys only
// with backend etcd, and what that backend needs.
func (d *decoder) checkStore(c *Config) {
	problem := func(key, format string, args ...any) {
		d.problems = append(d.problems, Problem{Line: d.lines[key], Key: key, Message: fmt.Sprintf(format, args...)})
	}
	e := c.Store.Etcd
	if c.Store.Backend != BackendEtcd {
		set := map[string]bool{"endpoints": len(e.Endpoints) > 0, "prefix": e.Prefix != "", "dial_timeout": e.DialTimeout != 0,
			"username": e.Username != "", "password_file": e.PasswordFile != "", "max_txn_ops": e.MaxTxnOps != 0,
			"max_request_bytes": e.MaxRequestBytes != 0, "tls": e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" || e.ServerName != ""}
		for _, k := range []string{"endpoints", "prefix", "dial_timeout", "username", "password_file", "tls", "max_txn_ops", "max_request_bytes"} {
			if set[k] {
				problem("store."+k, "applies to backend: etcd only: add store.backend: etcd, or remove it")
			}
		}
		if c.Store.Backend != BackendPebble && c.Store.Backend != "" {
			problem("store.backend", "%q is not one of %s, %s", c.Store.Backend, BackendEtcd, BackendPebble)
		}
		return
	}
	if _, set := d.lines["store.durability"]; set || c.Store.Durability != mailbox.DurabilitySync {
		problem("store.durability", "applies to the embedded store only: etcd makes every write durable on a quorum of members; remove it")
	}
	if len(e.Endpoints) == 0 {
		problem("store", "store.endpoints is missing: list the etcd members' client URLs, e.g. endpoints: [http://127.0.0.1:2379]")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			problem("store.endpoints", "endpoint %d, %q, is not a client URL: write http://HOST:PORT or https://HOST:PORT", i+1, ep)
		}
		if u != nil && u.Scheme == "http" && (e.CAFile != "" || e.CertFile != "") {
			problem("store.endpoints", "endpoint %q is http but store.tls is set: use https endpoints", ep)
		}
	}
	if e.Prefix == "" {
		problem("store", "store.prefix is missing: give the store a key prefix of its own, e.g. prefix: /graft/NAME")
	} else if err := etcdstore.CheckPrefix(e.Prefix); err != nil {
		problem("store.prefix", "%v", err)
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		problem("store.username", "store.username and store.password_file go together: give both, or neither")
	}
	if e.PasswordFile != "" {
		// Checked with the rest, not first at the store's open: a file
		// other users can read is refused there anyway.
		if _, err := trust.ReadSecret(e.PasswordFile, "store.password_file"); err != nil {
			problem("store.password_file", "%v", err)
		}
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		problem("store.tls", "cert_file and key_file go together: give both, or neither")
	}
	if need := c.Limits.MaxMessageSize*4/3 + etcdstore.RequestOverhead; e.MaxRequestBytes > 0 && need > e.MaxRequestBytes {
		problem("store.max_request_bytes", "%d bytes cannot carry a message of limits.max_message_size (%d bytes, %d once encoded): raise --max-request-bytes on the members and this, or lower limits.max_message_size",
			e.MaxRequestBytes, c.Limits.MaxMessageSize, need)
	}
}

// etcdConfig turns the section into the store's config, reading the
// password and TLS files. A password file that another user can read or
// write is refused, as a key file is.
func (s Store) etcdConfig() (etcdstore.Config, error) {
	e := s.Etcd
	cfg := etcdstore.Config{Endpoints: e.Endpoints, Prefix: e.Prefix, DialTimeout: e.DialTimeout, Username: e.Username,
		MaxTxnOps: e.MaxTxnOps, MaxRequestBytes: e.MaxRequestBytes}
	if e.PasswordFile != "" {
		pw, err := trust.ReadSecret(e.PasswordFile, "store.password_file")
		if err != nil {
			return cfg, err
		}
		cfg.Password = strings.TrimRight(string(pw), "\r\n")
	}
	if e.CAFile == "" && e.CertFile == "" && e.ServerName == "" && !anyHTTPS(e.Endpoints) {
		return cfg, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: e.ServerName}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("store.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("store.tls.ca_file %s holds no PEM certificate", e.CAFile)
		}
	}
	if e.CertFile != "" {
		if _, err := trust.ReadSecret(e.KeyFile, "store.tls.key_file"); err != nil {
			return cfg, err
		}
		pair, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return cfg, fmt.Errorf("store.tls: load cert_file %s and key_file %s: %w", e.CertFile, e.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = tc
	return cfg, nil
}

func anyHTTPS(endpoints []string) bool {
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") {
			return true
		}
	}
	return false
}

// open opens the configured backend.
func (s Store) open(opts mailbox.Options) (mailbox.Store, error) {
	if s.Backend != BackendEtcd {
		st, err := pebblestore.Open(s.Path, opts)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", s.Path, err)
		}
		return st, nil
	}
	cfg, err := s.etcdConfig()
	if err != nil {
		return nil, fmt.Errorf("open the etcd store: %w", err)
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = etcdstore.DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	st, err := etcdstore.Open(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("open the etcd store: %w", err)
	}
	return st, nil
}

// Operations one message of a batch may add to its commit's etcd
// transaction (a reply; an outgoing message, its id and its receiver's
// head), and those of the commit itself (the actor's record, epoch,
// cursor, state, the ack's range deletion, evictions).
const (
	etcdOpsPerMessage = 5
	etcdOpsPerCommit  = 32
)

// batchSize is the batch the core may hand a module: limits.batch_size,
// and on etcd no more than a commit of that many messages fits in the
// members' --max-txn-ops (etcd's default 128 allows 19).
func (s Store) batchSize(configured int) int {
	if s.Backend != BackendEtcd {
		return configured
	}
	ops := s.Etcd.MaxTxnOps
	if ops == 0 {
		ops = etcdstore.DefaultMaxTxnOps
	}
	return max(1, min(configured, (ops-etcdOpsPerCommit)/etcdOpsPerMessage))
}
