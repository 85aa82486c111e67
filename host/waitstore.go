package host

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/internal/buildinfo"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// Waiting for the store: an etcd store whose cluster has no quorum (not
// started yet, a partition) does not end the core's start. The core
// keeps trying, with a doubling backoff from storeRetryFirst to
// storeRetryMax and some jitter so that the members of a cluster do not
// retry in step, and meanwhile serves its control socket through a
// control.Gate: `graft status` says why it holds no actors. A systemd or
// Kubernetes operator expects exactly this of a service whose database
// is not up yet, rather than a crash loop. The backoff is a few lines
// here: what a library would add (retry budgets, policies) is not needed.
const (
	storeRetryFirst = 500 * time.Millisecond
	storeRetryMax   = 10 * time.Second
)

// errStoppedWaiting ends a start that a signal or the caller's context
// stopped while it waited for the store: a clean stop, not a failure.
var errStoppedWaiting = errors.New("stopped while waiting for the store")

// waitForStore returns once the store answers, or fails the start at
// once on an error that waiting does not cure (etcd refused the
// credentials, say): only etcdstore.ErrUnavailable is waited out. Until then the control
// socket answers through a gate that p keeps, for serve to open later.
func (h *Host) waitForStore(ctx context.Context, p *parts) error {
	if h.cfg.Store.Backend != config.BackendEtcd {
		return nil
	}
	// From the first try on: a SIGTERM during it (a dial waits up to
	// store.dial_timeout) is a clean stop too, not the default death.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := h.cfg.Store.PingEtcd(ctx)
	if ctx.Err() != nil {
		return errStoppedWaiting
	}
	if err == nil {
		h.warnAuthOff(ctx)
		return nil
	}
	if !errors.Is(err, etcdstore.ErrUnavailable) {
		return h.startErr(err) // a wrong password or setting: waiting would not help
	}
	build := buildinfo.Read()
	p.gate = control.NewGate(control.CoreInfo{PID: os.Getpid(), Socket: h.cfg.Control.Socket, Config: h.cfg.File, Started: time.Now(),
		Version: build.Version, Commit: build.Commit, GoVersion: build.GoVersion}, h.log.With("component", "control"))
	p.served = make(chan error, 1)
	go func() { p.served <- p.gate.Serve(p.ctl) }()
	since := time.Now()
	delay := storeRetryFirst
	for attempt := 1; err != nil; attempt++ {
		wait := delay/2 + rand.N(delay) //nolint:gosec // G404: jitter, not a secret
		why := fmt.Sprintf("waiting for its store since %s (attempt %d, next in %s): %v", since.Format(time.RFC3339), attempt, wait.Round(time.Millisecond), err)
		p.gate.Wait(why)
		h.log.Warn("the store does not answer: the core holds no actors until it does; retrying", "attempt", attempt, "next", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return errStoppedWaiting
		case <-time.After(wait):
		}
		delay = min(2*delay, storeRetryMax)
		err = h.cfg.Store.PingEtcd(ctx)
		if ctx.Err() != nil {
			return errStoppedWaiting
		}
		if err != nil && !errors.Is(err, etcdstore.ErrUnavailable) {
			return h.startErr(err)
		}
	}
	p.gate.Wait("starting: its store answers")
	h.log.Info("the store answers: starting the core", "waited", time.Since(since).Round(time.Millisecond))
	h.warnAuthOff(ctx)
	return nil
}

// warnAuthOff says, once the store answers, that the credentials the
// config gives protect nothing when the etcd cluster runs without
// authentication (etcd accepts them silently).
func (h *Host) warnAuthOff(ctx context.Context) {
	off, err := h.cfg.Store.EtcdAuthOff(ctx)
	if err != nil {
		h.log.Debug("could not ask etcd whether authentication is on", "err", err)
		return
	}
	if off {
		h.log.Warn("store.username and store.password_file are set, but the etcd cluster runs without authentication: anyone who reaches it can read and write this store (and, through the cluster rollout, run code on every member); enable it with `etcdctl auth enable`",
			"endpoints", h.cfg.Store.Etcd.Endpoints)
	}
}
