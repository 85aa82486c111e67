// Command crashcore is the core upgrade's crash tests kill with a
// failpoint (TestKill9AtEachUpgradeStep). The tests build it with
// -tags graftfailpoints, so GRAFT_FAILPOINT=<failpoint> kills it with
// SIGKILL at that instant of the upgrade, as a release graft never can.
//
// It runs ACTORS actors of the kv behaviour, whose source binary is
// DIR/kv, on a store in DIR/store, sends to each one message after the
// other, then installs the binary KV2 as DIR/kv and upgrades to it. On
// stdout it says "try ACTOR ID" before and "ok ACTOR ID" after each send,
// so the test knows which sends were acknowledged; "error ..." or
// "upgraded ..." (the failpoint did not fire) end it with status 1. With
// GRAFT_CRASH_CANARY set (e.g. "50%"), the upgrade is a canary of that
// share baking for an hour.
//
// Usage: crashcore DIR KV2 ACTORS
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
	"github.com/graft-host/graft/upgrade"
)

func say(format string, args ...any) { os.Stdout.Write([]byte(fmt.Sprintf(format, args...) + "\n")) }

func fail(err error) {
	say("error %v", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: crashcore DIR KV2 ACTORS"))
	}
	dir, kv2 := os.Args[1], os.Args[2]
	n, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fail(fmt.Errorf("ACTORS: %w", err))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			return pebblestore.Open(filepath.Join(dir, "store"), opts)
		},
		Behaviours: map[string]core.BehaviourConfig{"kv": {Binary: filepath.Join(dir, "kv"), HandleTimeout: 5 * time.Second}},
		Logger:     log,
		SocketDir:  os.TempDir(),
	}
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("kv%d", i))
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: names[i], Behaviour: "kv"})
	}
	mgr, err := upgrade.New(upgrade.Options{Dir: filepath.Join(dir, "store", "modules"), GroupSize: 2, Logger: log})
	if err != nil {
		fail(err)
	}
	if err := mgr.Prepare(&cfg); err != nil {
		fail(err)
	}
	c, err := core.New(cfg)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	mgr.Attach(ctx, c.Upgrades())
	for _, a := range names {
		go send(ctx, c, a)
	}
	say("ready")
	waitForTraffic(c, names[0])
	if err := install(kv2, filepath.Join(dir, "kv")); err != nil {
		fail(err)
	}
	var opts upgrade.UpgradeOptions
	if share := os.Getenv("GRAFT_CRASH_CANARY"); share != "" {
		if opts.Canary, err = upgrade.ParseCanary(share, time.Hour); err != nil {
			fail(err)
		}
	}
	_, err = mgr.UpgradeWith(ctx, "kv", "", opts)
	say("upgraded %v", err) // only reached when the failpoint did not fire
	os.Exit(1)
}

// send sends actor a stream of messages, each with its own id, one after
// the other.
func send(ctx context.Context, c *core.Core, actor string) {
	for i := 0; ; i++ {
		p := fmt.Sprintf("%s-%d", actor, i)
		say("try %s %s", actor, p)
		if _, err := c.Send(ctx, actor, []byte(p), core.SendOptions{ID: p}); err != nil {
			fail(err)
		}
		say("ok %s %s", actor, p)
	}
}

// waitForTraffic lets messages flow on v1 for a while (at most 10 s), so
// the upgrade has committed state to migrate and sends in flight.
func waitForTraffic(c *core.Core, actor string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := c.Store().Stats(actor)
		if st.Acked > 30 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// install replaces dst by src's bytes with a rename, as a build would.
func install(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := os.WriteFile(dst+".new", b, 0o755); err != nil {
		return fmt.Errorf("write %s.new: %w", dst, err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}
