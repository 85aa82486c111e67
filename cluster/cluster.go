package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultLeaseTTL is how long a member that stops answering keeps its
// actors: etcd's lease, renewed every third of it.
const DefaultLeaseTTL = 5 * time.Second

// Config says which cluster to join, and as whom.
type Config struct {
	// Client is the connection to etcd (the store's).
	Client *clientv3.Client
	// Prefix is the store's prefix: the cluster's keys lie under
	// Prefix + "/cluster/".
	Prefix string
	// Member is this core's name in the cluster, unique among its
	// members.
	Member string
	// LeaseTTL is how long a silent member keeps its actors (default 5 s,
	// at least 2 s).
	LeaseTTL time.Duration
	// Info is what the other members and operators see of this one.
	Info MemberInfo
	// Logger receives the cluster's logs (default: discard).
	Logger *slog.Logger
	// ActorKeys, when set, is the key prefix of the store's actor
	// records: an actor created anywhere is placed at once, not at the
	// next periodic pass.
	ActorKeys string
	// BeforeJoin, if set, is called before the member joins: the first
	// time and each time after it stepped down. The member's rollout
	// catches up there (rollout.Rollout.CatchUp), so that the actors it
	// takes over run the version the cluster runs.
	BeforeJoin func(ctx context.Context)
}

// MemberInfo is the value of a member's key.
type MemberInfo struct {
	// Name is the member's name.
	Name string `json:"name"`
	// Pid and Socket say where its core runs and answers.
	Pid    int    `json:"pid"`
	Socket string `json:"socket,omitempty"`
	// Since is when it joined.
	Since time.Time `json:"since"`
}

// Core is what the cluster drives: the graft core's Rebalance and
// Released (core.Core has them).
type Core interface {
	Rebalance(ctx context.Context) ([]string, error)
	Released(name string) bool
}

// Cluster is this core's membership and the ownership of the actors. It
// implements core.Placement.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	keys   keyspace
	client *clientv3.Client

	mu      sync.RWMutex
	lease   clientv3.LeaseID // 0 while this member holds none
	members map[string]MemberInfo
	owners  map[string]string // actor -> member
	giving  map[string]bool   // owned actors being handed to another member
	ownRev  map[string]int64  // mod revision of each owner key
	// leases are the live members' leases, from their member keys: a
	// handover puts the owner key under the new owner's (run.go).
	leases map[string]clientv3.LeaseID

	kick chan struct{}
}

// keyspace builds the cluster's keys.
type keyspace struct{ prefix string }

func (k keyspace) members() string           { return k.prefix + "m/" }
func (k keyspace) member(name string) string { return k.prefix + "m/" + name }
func (k keyspace) owners() string            { return k.prefix + "o/" }
func (k keyspace) owner(actor string) string { return k.prefix + "o/" + actor }

// New prepares this member; Run joins and keeps it in the cluster.
func New(cfg Config) (*Cluster, error) {
	if cfg.Client == nil {
		return nil, errors.New("cluster: no etcd client")
	}
	if cfg.Member == "" {
		return nil, errors.New("cluster: no member name: give each core of the cluster its own (cluster.member)")
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < 2*time.Second {
		return nil, fmt.Errorf("cluster: lease_ttl %s is under 2s: etcd's leases count in seconds, and a shorter one would expire under a busy member", cfg.LeaseTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Info.Name == "" {
		cfg.Info = MemberInfo{Name: cfg.Member, Pid: os.Getpid()}
	}
	return &Cluster{cfg: cfg, log: cfg.Logger.With("member", cfg.Member), keys: keyspace{prefix: cfg.Prefix + "/cluster/"}, client: cfg.Client,
		members: map[string]MemberInfo{}, owners: map[string]string{}, giving: map[string]bool{}, ownRev: map[string]int64{}, leases: map[string]clientv3.LeaseID{},
		kick: make(chan struct{}, 1)}, nil
}

// Owns implements core.Placement: this member holds the actor's owner
// key, under a live lease, and is not handing it over.
func (c *Cluster) Owns(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lease != 0 && c.owners[name] == c.cfg.Member && !c.giving[name]
}

// OwnerOf implements core.Placement.
func (c *Cluster) OwnerOf(name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.owners[name]
}

// Member is one member as Members reports it.
type Member struct {
	MemberInfo
	// Actors is how many actors it owns.
	Actors int
	// Self is set for this member.
	Self bool
}

// Members lists the live members, by name.
func (c *Cluster) Members() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	count := map[string]int{}
	for _, m := range c.owners {
		count[m]++
	}
	out := make([]Member, 0, len(c.members))
	for name, info := range c.members {
		out = append(out, Member{MemberInfo: info, Actors: count[name], Self: name == c.cfg.Member})
	}
	slices.SortFunc(out, func(a, b Member) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// OwnerKey is the key that holds actor's ownership and the lease this
// member holds it under (etcdstore.OwnershipGuard): the store guards
// every Claim with it.
func (c *Cluster) OwnerKey(actor string) (string, int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.keys.owner(actor), int64(c.lease), c.lease != 0
}

// LeaseTTL is the lease's time to live.
func (c *Cluster) LeaseTTL() time.Duration { return c.cfg.LeaseTTL }

// Name is this member's name.
func (c *Cluster) Name() string { return c.cfg.Member }

// Kick asks for a reconcile soon (an actor was created, say).
func (c *Cluster) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// desired is the member that should own actor: the highest rendezvous
// hash of (member, actor) over the live members, so that a member's
// arrival or departure moves only the actors that go to or come from it.
func desired(members []string, actor string) string {
	var best string
	var top uint64
	for _, m := range members {
		h := xxhash.Sum64String(m + "\x00" + actor)
		if best == "" || h > top || (h == top && m < best) {
			best, top = m, h
		}
	}
	return best
}

// applyMember records a member key's event.
func (c *Cluster) applyMember(ev *clientv3.Event) {
	name := string(ev.Kv.Key[len(c.keys.members()):])
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Type == mvccpb.DELETE {
		delete(c.members, name)
		delete(c.leases, name)
		return
	}
	var info MemberInfo
	if err := json.Unmarshal(ev.Kv.Value, &info); err != nil {
		info = MemberInfo{Name: name}
	}
	c.members[name] = info
	c.leases[name] = clientv3.LeaseID(ev.Kv.Lease)
}

// applyOwner records an owner key's event.
func (c *Cluster) applyOwner(ev *clientv3.Event) {
	actor := string(ev.Kv.Key[len(c.keys.owners()):])
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev, ok := c.ownRev[actor]; ok && ev.Kv.ModRevision < rev {
		return
	}
	c.ownRev[actor] = ev.Kv.ModRevision
	if ev.Type == mvccpb.DELETE {
		delete(c.owners, actor)
		delete(c.giving, actor)
		return
	}
	c.owners[actor] = string(ev.Kv.Value)
	if string(ev.Kv.Value) != c.cfg.Member {
		delete(c.giving, actor)
	}
}
