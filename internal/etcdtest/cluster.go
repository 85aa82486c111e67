package etcdtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cluster is a cluster of etcd members, each a process of its own (the
// member command), on loopback, so a test can kill -9 one and start it
// again on its data.
type Cluster struct {
	t       testing.TB
	bin     string
	members []*proc
	initial string
}

type proc struct {
	name, dir, client, peer string
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

// StartCluster starts n members from the member binary at bin (built by
// the test's TestMain) and waits until the cluster answers; they are
// killed when the test ends.
func StartCluster(t testing.TB, bin string, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: bin}
	base := t.TempDir()
	var initial []string
	for i := range n {
		p := &proc{name: fmt.Sprintf("m%d", i), dir: filepath.Join(base, fmt.Sprintf("m%d", i)),
			client: "http://" + freeAddr(t), peer: "http://" + freeAddr(t)}
		c.members = append(c.members, p)
		initial = append(initial, p.name+"="+p.peer)
	}
	c.initial = strings.Join(initial, ",")
	for i := range c.members {
		c.start(i, "new")
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Kill(i)
		}
	})
	c.WaitHealthy(60 * time.Second)
	return c
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *Cluster) start(i int, state string) {
	p := c.members[i]
	p.cmd = exec.Command(c.bin, "-name", p.name, "-dir", p.dir, "-client", p.client, "-peer", p.peer,
		"-cluster", c.initial, "-state", state, "-max-txn-ops", fmt.Sprint(MaxTxnOps))
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatalf("member %s: %v", p.name, err)
	}
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start member %s: %v", p.name, err)
	}
	p.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, p := range c.members {
		out[i] = p.client
	}
	return out
}

// Kill kills member i with SIGKILL and waits for it to exit.
func (c *Cluster) Kill(i int) {
	p := c.members[i]
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart starts member i again on its data folder.
func (c *Cluster) Restart(i int) { c.start(i, "existing") }

// WaitHealthy waits until every running member answers a linearizable
// read.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for _, p := range c.members {
		select {
		case <-p.exited:
			continue
		default:
		}
		for {
			if err := ping(p.client); err == nil {
				break
			} else if time.Now().After(deadline) {
				c.t.Fatalf("etcd member %s not healthy within %s: %v", p.name, within, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func ping(endpoint string) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cl.Get(ctx, "health")
	return err
}

// Leader returns the index of the member that leads the cluster now.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	defer cl.Close()
	for i, p := range c.members {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.Status(ctx, p.client)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatalf("no member of the cluster is its leader")
	return -1
}
