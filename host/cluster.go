package host

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/cluster"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
	"github.com/graft-host/graft/rollout"
	"github.com/graft-host/graft/upgrade"
)

// clusterParts are a member's cluster pieces, for the stop.
type clusterParts struct {
	cluster *cluster.Cluster
	rollout *rollout.Rollout // nil if it could not be built: upgrades stay on this member
	client  *clientv3.Client
	stop    context.CancelFunc
	done    chan struct{}
}

// joinCluster prepares this member of the cluster the config names before
// the core is built, so that the core's placement answers from its first
// start: it owns nothing until the cluster's loop (runCluster) has joined
// and acquired its share.
func (h *Host) joinCluster(ctx context.Context, p *parts, coreCfg *core.Config, mgr *upgrade.Manager) error {
	cc := h.cfg.Cluster
	if cc.Member == "" {
		return nil
	}
	client, err := h.cfg.Store.EtcdClient()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cl, err := cluster.New(cluster.Config{
		Client: client, Prefix: h.cfg.Store.Etcd.Prefix, Member: cc.Member, LeaseTTL: cc.LeaseTTL,
		ActorKeys: etcdstore.ActorKeys(h.cfg.Store.Etcd.Prefix),
		Info:      cluster.MemberInfo{Name: cc.Member, Pid: os.Getpid(), Socket: h.cfg.Control.Socket},
		Logger:    h.log.With("component", "cluster"),
		BeforeJoin: func(ctx context.Context) {
			ro := p.announcer.Load()
			if ro == nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
			defer cancel()
			if err := ro.CatchUp(cctx); err != nil && ctx.Err() == nil {
				h.log.Warn("cluster: could not catch up with the versions the cluster runs before joining; joining anyway (the rollout follows them after)", "err", err)
			}
		},
	})
	if err != nil {
		_ = client.Close()
		return err
	}
	p.cluster = &clusterParts{cluster: cl, client: client}
	ro, err := rollout.New(rollout.Config{Client: client, Prefix: h.cfg.Store.Etcd.Prefix, Member: cc.Member,
		Upgrader: mgr, Scratch: h.cfg.Store.Path, Logger: h.log.With("component", "rollout")})
	if err != nil {
		h.log.Error("upgrades will not reach the other members (run graft upgrade on each)", "err", err)
	} else {
		p.cluster.rollout = ro
		p.announcer.Store(ro)
	}
	coreCfg.Placement = cl
	open := coreCfg.OpenStore
	coreCfg.OpenStore = func(opts mailbox.Options) (mailbox.Store, error) {
		s, err := open(opts)
		if es, ok := s.(*etcdstore.Store); ok {
			es.GuardClaims(cl.OwnerKey) // a claim needs the ownership key: a lagging view cannot fence the owner
		}
		return s, err
	}
	return nil
}

// runCluster starts the member's loop once the core runs.
func (h *Host) runCluster(p *parts) {
	if p.cluster == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cluster.stop, p.cluster.done = cancel, make(chan struct{})
	lister := func(ctx context.Context) ([]string, error) {
		actors, err := p.core.Store().Actors(ctx)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(actors))
		for i, a := range actors {
			names[i] = a.Name
		}
		return names, nil
	}
	ro := p.cluster.rollout
	go func() {
		defer close(p.cluster.done)
		p.core.WarmModules(ctx) // before joining: a handover then waits for no plugin start
		if ro != nil {
			rolled := make(chan struct{})
			go func() { defer close(rolled); ro.Run(ctx) }()
			defer func() { <-rolled }()
		}
		_ = p.cluster.cluster.Run(ctx, p.core, lister)
	}()
}

// leaveCluster ends the member's loop, which revokes its lease so that
// the other members take its actors over at once: after the core has
// stopped them.
func (p *parts) leaveCluster() {
	if p.cluster == nil {
		return
	}
	if p.cluster.stop != nil {
		p.cluster.stop()
		<-p.cluster.done
	}
	p.announcer.Store(nil)
	_ = p.cluster.client.Close()
	p.cluster = nil
}

// catchUpTimeout bounds the rollout's pass before a join: fetching a
// binary from etcd and an op that moves no actor.
const catchUpTimeout = 2 * time.Minute

// announce is the upgrade manager's BeforeMove in a cluster: the
// member's rollout announces the op (nil outside a cluster, or once the
// member left it).
func (p *parts) announce(ctx context.Context, behaviour string, op upgrade.Op) error {
	if ro := p.announcer.Load(); ro != nil {
		return ro.Announce(ctx, behaviour, op)
	}
	return nil
}

// fetchWriter is the upgrade manager's FetchWriter in a cluster: the
// member's rollout fetches the binary from etcd.
func (p *parts) fetchWriter(ctx context.Context, behaviour, code string) (string, error) {
	if ro := p.announcer.Load(); ro != nil {
		return ro.FetchWriter(ctx, behaviour, code)
	}
	return "", fmt.Errorf("this member is not in a cluster now")
}

// members is the control API's view of the cluster's members.
func (p *parts) members() func() []control.MemberStatus {
	if p.cluster == nil {
		return nil
	}
	cl := p.cluster.cluster
	return func() []control.MemberStatus {
		ms := cl.Members()
		out := make([]control.MemberStatus, len(ms))
		for i, m := range ms {
			out[i] = control.MemberStatus{Name: m.Name, Pid: m.Pid, Socket: m.Socket, Since: m.Since, Actors: m.Actors, Self: m.Self}
		}
		return out
	}
}
