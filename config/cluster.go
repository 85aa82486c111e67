package config

import (
	"context"
	"fmt"
	"regexp"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox/etcdstore"
)

// Cluster is the cluster section: several cores that share one etcd
// store and spread its actors among them.
type Cluster struct {
	// Member is this core's name in the cluster; empty: no cluster.
	Member string
	// LeaseTTL is how long a member that stops answering keeps its
	// actors (default 5 s).
	LeaseTTL time.Duration
}

var memberRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkCluster checks the cluster section: a member name, and the etcd
// backend the members share.
func (d *decoder) checkCluster(c *Config) {
	problem := func(key, format string, args ...any) {
		d.problems = append(d.problems, Problem{Line: d.lines[key], Key: key, Message: fmt.Sprintf(format, args...)})
	}
	_, section := d.lines["cluster"]
	if c.Cluster.Member == "" {
		if section || c.Cluster.LeaseTTL != 0 {
			problem("cluster", "cluster.member is missing: name this core in the cluster, e.g. member: core-1 (each core its own name)")
		}
		return
	}
	if !memberRE.MatchString(c.Cluster.Member) {
		problem("cluster.member", "%q is not a member name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Cluster.Member)
	}
	if c.Cluster.LeaseTTL != 0 && (c.Cluster.LeaseTTL < 2*time.Second || c.Cluster.LeaseTTL%time.Second != 0) {
		problem("cluster.lease_ttl", "%s: give whole seconds, at least 2s (etcd's leases count in seconds)", c.Cluster.LeaseTTL)
	}
	if c.Store.Backend != BackendEtcd {
		problem("cluster", "a cluster's cores share one store: set store.backend: etcd, with the same endpoints and prefix on every member")
	}
}

// EtcdClient connects to the store's etcd cluster, for what shares it
// with the store (the cluster's membership).
func (s Store) EtcdClient() (*clientv3.Client, error) {
	cfg, err := s.etcdConfig()
	if err != nil {
		return nil, err
	}
	return etcdstore.NewClient(cfg)
}

// EtcdAuthOff says whether the etcd cluster runs without authentication
// although the section gives credentials (etcdstore.AuthOff).
func (s Store) EtcdAuthOff(ctx context.Context) (bool, error) {
	if s.Backend != BackendEtcd || s.Etcd.Username == "" {
		return false, nil
	}
	cfg, err := s.etcdConfig()
	if err != nil {
		return false, err
	}
	return etcdstore.AuthOff(ctx, cfg)
}

// PingEtcd tells whether the store's etcd cluster answers (nil for the
// pebble backend): a core waits on it before it starts, with its control
// socket up to say why (etcdstore.Ping).
func (s Store) PingEtcd(ctx context.Context) error {
	if s.Backend != BackendEtcd {
		return nil
	}
	cfg, err := s.etcdConfig()
	if err != nil {
		return err
	}
	return etcdstore.Ping(ctx, cfg)
}
