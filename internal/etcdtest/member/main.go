// Command member runs one etcd member from the module's own etcd server
// source, for tests and scripts that must kill -9 a member and start it
// again (internal/etcdtest.Cluster, scripts/cluster-demo.sh). It is a
// thin front of go.etcd.io/etcd/server/v3/embed: a member of a cluster of
// loopback members, with --max-txn-ops raised as graft needs.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	name := flag.String("name", "m0", "member name")
	dir := flag.String("dir", "", "data folder")
	client := flag.String("client", "http://127.0.0.1:2379", "client URL")
	peer := flag.String("peer", "http://127.0.0.1:2380", "peer URL")
	cluster := flag.String("cluster", "", "initial cluster: name=peerURL,...")
	state := flag.String("state", "new", "initial cluster state: new or existing")
	maxTxnOps := flag.Uint("max-txn-ops", 4096, "--max-txn-ops")
	flag.Parse()
	if err := run(*name, *dir, *client, *peer, *cluster, *state, *maxTxnOps); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		os.Exit(1)
	}
}

func run(name, dir, client, peer, cluster, state string, maxTxnOps uint) error {
	cu, err := url.Parse(client)
	if err != nil {
		return fmt.Errorf("-client: %w", err)
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cluster
	if cluster == "" {
		cfg.InitialCluster = name + "=" + peer
	}
	cfg.ClusterState = state
	cfg.MaxTxnOps = maxTxnOps
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready", client)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("not ready within 60s")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return err
	}
}
