package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/graft-host/graft/mailbox"
)

// formatMarker is the value of the marker key: a prefix that holds
// something else is refused rather than written over.
const formatMarker = "graft-etcdstore/1"

// Defaults of Config fields left zero.
const (
	// DefaultMaxTxnOps is etcd's own default --max-txn-ops.
	DefaultMaxTxnOps = 128
	// DefaultMaxRequestBytes is etcd's own default --max-request-bytes
	// (1.5 MiB).
	DefaultMaxRequestBytes = 3 << 19
	// DefaultDialTimeout bounds the first connection.
	DefaultDialTimeout = 5 * time.Second
	// RequestOverhead is what a request adds to the largest value it
	// carries (keys, the other records of the write, framing): the config
	// checks that a message of the largest size, encoded, plus this fits
	// MaxRequestBytes.
	RequestOverhead = 64 << 10
)

// Config says where the store lives and what the etcd cluster allows.
type Config struct {
	// Endpoints are the etcd members' client URLs.
	Endpoints []string
	// Prefix is the key prefix of this store ("/graft/NAME"); every key of
	// the store lies under Prefix + "/".
	Prefix string
	// TLS, if set, is used to reach the members (https endpoints).
	TLS *tls.Config
	// Username and Password authenticate to an etcd with auth enabled.
	Username, Password string
	// DialTimeout bounds the first connection (default 5 s).
	DialTimeout time.Duration
	// MaxTxnOps and MaxRequestBytes are the cluster's --max-txn-ops and
	// --max-request-bytes (defaults: etcd's own, 128 and 1.5 MiB). A write
	// that would exceed them is refused by the store, before it is sent,
	// with an error that names the limit.
	MaxTxnOps       int
	MaxRequestBytes int
}

func (c Config) withDefaults() Config {
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Store is the mailbox.Store on etcd. Create it with Open; it is safe for
// concurrent use, and several processes may open the same prefix: every
// write is a guarded transaction, and each keeps its cache current with a
// watch.
type Store struct {
	cfg    Config
	opts   mailbox.Options
	client *clientv3.Client
	kv     clientv3.KV
	k      keys

	cache *cache

	// life is held shared by every call and exclusively by Close.
	life   sync.RWMutex
	closed atomic.Bool
	stop   context.CancelFunc
	done   chan struct{} // closed when the watch loop has ended

	// fireMu serializes this process's FireDue calls (other processes'
	// are kept apart by the transactions' guards).
	fireMu sync.Mutex

	// creations makes Created fire once per actor (creations.go).
	creations *creations
	// hotKeys saves writes the read of the keys they all read (hot.go).
	hotKeys *hotKeys
	// cursorWaiters are the WaitOutcome calls, by actor, that the watch
	// of the cursors wakes.
	cursorWaiters *waiters
	// claimGuard, in a cluster, guards Claim by the ownership (GuardClaims).
	claimGuard OwnershipGuard
}

var _ mailbox.Store = (*Store)(nil)

// Open connects to the cluster and opens the store under cfg.Prefix,
// creating it if the prefix is empty. It fails with a
// *mailbox.CorruptError if the prefix holds something that is not a graft
// store, and with an error naming the endpoints if no member answers
// within the dial timeout.
func Open(ctx context.Context, cfg Config, opts mailbox.Options) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd store: no endpoints: list the etcd members' client URLs (store.endpoints)")
	}
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	s, err := openWith(ctx, client, cfg, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// Ping tells whether the cluster cfg names answers a linearizable read
// (a quorum is up) within its dial timeout, for a core that waits for
// its store before it starts. Its error is the one Open would give: it
// wraps ErrUnavailable and names the endpoints and settings to check.
func Ping(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	hinted := func(err error) error {
		if hint := unresolved(ctx, cfg.Endpoints); hint != "" {
			return fmt.Errorf("%w; %s", err, hint)
		}
		return err
	}
	client, err := newClient(ctx, cfg)
	if err != nil {
		return hinted(err)
	}
	defer func() { _ = client.Close() }()
	s := &Store{cfg: cfg, k: keys{prefix: cfg.Prefix + "/"}}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := client.Get(pctx, s.k.marker(), clientv3.WithKeysOnly()); err != nil {
		return hinted(s.wrap("reach the store", err))
	}
	return nil
}

// AuthOff says whether the cluster cfg names runs without authentication
// although cfg gives credentials: every client that reaches it can then
// read and write the store, and the password protects nothing. etcd
// accepts the credentials silently, so the core says it (a warning: the
// cluster works).
func AuthOff(ctx context.Context, cfg Config) (bool, error) {
	if cfg.Username == "" {
		return false, nil
	}
	cfg = cfg.withDefaults()
	client, err := newClient(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() { _ = client.Close() }()
	actx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	st, err := client.AuthStatus(actx)
	if err != nil {
		return false, fmt.Errorf("ask etcd %s whether authentication is on: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return !st.Enabled, nil
}

// unresolved names the endpoints whose host name does not resolve, for
// an error that would otherwise read as an etcd that is down: a typo in
// store.endpoints is the likelier cause. It is a hint: the store is still
// waited for, since a name may come to resolve.
func unresolved(ctx context.Context, endpoints []string) string {
	var bad []string
	for _, ep := range endpoints {
		host := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host = u.Host
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := net.DefaultResolver.LookupHost(lctx, host)
		cancel()
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			bad = append(bad, fmt.Sprintf("%s (host %q does not resolve)", ep, host))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "check store.endpoints for a typo: " + strings.Join(bad, ", ")
}

// NewClient connects to the cluster cfg names as the store does: for
// what shares the store's cluster (graft's cluster membership).
func NewClient(cfg Config) (*clientv3.Client, error) {
	return newClient(context.Background(), cfg)
}

// newClient is NewClient whose dial ends with ctx too (Ping's, which a
// SIGTERM ends).
func newClient(ctx context.Context, cfg Config) (*clientv3.Client, error) {
	cfg = cfg.withDefaults()
	client, err := clientv3.New(clientv3.Config{
		Context:            ctx,
		Endpoints:          cfg.Endpoints,
		DialTimeout:        cfg.DialTimeout,
		TLS:                cfg.TLS,
		Username:           cfg.Username,
		Password:           cfg.Password,
		MaxCallSendMsgSize: cfg.MaxRequestBytes + RequestOverhead,
		Logger:             zap.NewNop(), // its retries end in errors the store words itself
		DialKeepAliveTime:  10 * time.Second,
		RejectOldCluster:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: no member answered within %s (store.dial_timeout): check that etcd runs there and that store.endpoints (and store.tls) are right: %w (%w)",
			strings.Join(cfg.Endpoints, ","), cfg.DialTimeout, err, ErrUnavailable)
	}
	return client, nil
}

// ActorKeys is the prefix of the actor records of the store at prefix,
// for what follows the actors' creation (the cluster's reconcile).
func ActorKeys(prefix string) string { return keys{prefix: prefix + "/"}.prefix + kindActor }

func openWith(ctx context.Context, client *clientv3.Client, cfg Config, opts mailbox.Options) (*Store, error) {
	s := &Store{cfg: cfg, opts: opts.WithDefaults(), client: client, kv: client.KV, k: keys{prefix: cfg.Prefix + "/"},
		creations: newCreations(), hotKeys: newHotKeys(), cursorWaiters: newWaiters()}
	octx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := s.claimPrefix(octx); err != nil {
		return nil, err
	}
	c, rev, err := s.loadCache(octx)
	if err != nil {
		return nil, err
	}
	s.cache = c
	wctx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go s.watch(wctx, rev)
	return s, nil
}

// CheckPrefix refuses a prefix that would mix the store with other keys,
// for the config to check before anything connects.
func CheckPrefix(p string) error {
	switch {
	case p == "" || p == "/":
		return errors.New("etcd store: empty prefix: give the store a prefix of its own, such as /graft/NAME (store.prefix)")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("etcd store: prefix %q must start with /, such as /graft/NAME (store.prefix)", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("etcd store: prefix %q must not end with /: write /graft/NAME (store.prefix)", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("etcd store: prefix %q has a control character (store.prefix)", p)
	}
	return nil
}

// claimPrefix writes the format marker into an empty prefix, or checks
// the one there.
func (s *Store) claimPrefix(ctx context.Context) error {
	m := s.k.marker()
	resp, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(m), "=", 0)).
		Then(clientv3.OpPut(m, formatMarker)).Else(clientv3.OpGet(m)).Commit()
	if err != nil {
		return s.wrap("open", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) == formatMarker {
		return nil
	}
	return &mailbox.CorruptError{Path: s.where(), Err: fmt.Errorf("key %q holds %q, not %q: the prefix belongs to something else; give graft a prefix of its own", m, kvs[0].Value, formatMarker)}
}

// where names the store in errors: its endpoints and prefix.
func (s *Store) where() string {
	return "etcd " + strings.Join(s.cfg.Endpoints, ",") + " " + s.cfg.Prefix
}

// enter and leave bracket every call, so that Close waits for calls in
// progress and later calls fail with ErrClosed.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return mailbox.ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// Close stops the watch and closes the connection. What was acknowledged
// is in etcd already: there is nothing to flush.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed.Swap(true) {
		s.life.Unlock()
		return nil
	}
	s.life.Unlock()
	s.stop()
	<-s.done
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close the connection to %s: %w", s.where(), err)
	}
	return nil
}

// Client returns the store's etcd client, for the cluster's membership
// and leases, which share its connection.
func (s *Store) Client() *clientv3.Client { return s.client }
