// Package etcdtest starts real etcd clusters for tests: N members of the
// etcd server (go.etcd.io/etcd/server/v3/embed) in the test process, on
// loopback ports, with their data in t.TempDir(). Members can be killed
// and restarted to test what signerd does when one fails.
//
// Only tests and test helpers import this package: the etcd server never
// links into signerd.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// LogEnv, set to 1, sends the members' logs to stderr.
const LogEnv = "SIGNERD_TEST_ETCD_LOG"

// Options tune a cluster. The zero value is usable.
type Options struct {
	// TickMs and ElectionMs are the raft heartbeat and election timeout;
	// 0 means 50 and 500: a killed leader is replaced in about a second,
	// and a race-instrumented test on a loaded machine does not lose its
	// leader for nothing.
	TickMs, ElectionMs uint
	// Fsync keeps etcd's fsyncs. Without it (the default) members skip
	// them: every test here kills members inside one process, so the page
	// cache survives and quorum commit is what is being tested.
	Fsync bool
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	opts    Options
	token   string
	members []*member
	mu      sync.Mutex
}

type member struct {
	name             string
	dir              string
	peerURL, cliURL  url.URL
	etcd             *embed.Etcd
	initialClusterCS string
}

// Start starts an n-member cluster (n odd, usually 1 or 3) and waits until
// it has a leader and every member serves. It is stopped at the end of the
// test.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.TickMs == 0 {
		opts.TickMs = 50
	}
	if opts.ElectionMs == 0 {
		opts.ElectionMs = 500
	}
	var lastErr error
	// Ports are picked free and released before etcd binds them; another
	// process can take one in between, so try again with new ones.
	for range 3 {
		c := &Cluster{t: t, opts: opts, token: fmt.Sprintf("signerd-test-%d", time.Now().UnixNano())}
		if err := c.start(n); err != nil {
			c.closeAll()
			lastErr = err
			continue
		}
		t.Cleanup(c.closeAll)
		return c
	}
	t.Fatalf("start a %d-member etcd cluster: %v", n, lastErr)
	return nil
}

func (c *Cluster) start(n int) error {
	ports, err := freePorts(2 * n)
	if err != nil {
		return err
	}
	base := c.t.TempDir()
	var initial []string
	for i := range n {
		m := &member{
			name:    fmt.Sprintf("m%d", i),
			dir:     filepath.Join(base, fmt.Sprintf("m%d", i)),
			peerURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])},
			cliURL:  url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])},
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL.String())
	}
	for _, m := range c.members {
		m.initialClusterCS = strings.Join(initial, ",")
		if err := c.startMember(m, embed.ClusterStateFlagNew); err != nil {
			return err
		}
	}
	for _, m := range c.members {
		if err := waitReady(m.etcd, 30*time.Second); err != nil {
			return fmt.Errorf("member %s: %w", m.name, err)
		}
	}
	return nil
}

func (c *Cluster) startMember(m *member, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peerURL}, []url.URL{m.peerURL}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.cliURL}, []url.URL{m.cliURL}
	cfg.InitialCluster = m.initialClusterCS
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = state
	cfg.TickMs, cfg.ElectionMs = c.opts.TickMs, c.opts.ElectionMs
	cfg.UnsafeNoFsync = !c.opts.Fsync
	cfg.EnableGRPCGateway = false
	cfg.Logger = "zap"
	if os.Getenv(LogEnv) == "1" {
		cfg.LogLevel = "info"
		cfg.LogOutputs = []string{"stderr"}
	} else {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	m.etcd = e
	return nil
}

func waitReady(e *embed.Etcd, limit time.Duration) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return err
	case <-time.After(limit):
		return errors.New("not ready in time")
	}
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Endpoints returns every member's client URL (http://127.0.0.1:PORT),
// running or not.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.cliURL.String())
	}
	return out
}

// Client returns a client of the cluster that knows every member; it is
// closed at the end of the test.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the member that is the leader, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Kill stops member i abruptly: raft stops without handing over
// leadership, then its listeners close; calls in flight on it fail.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.etcd == nil {
		return
	}
	m.etcd.Server.HardStop()
	m.etcd.Close()
	m.etcd = nil
}

// Restart starts member i again on its data directory; it rejoins the
// cluster and catches up.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.etcd != nil {
		return
	}
	if err := c.startMember(m, embed.ClusterStateFlagExisting); err != nil {
		c.t.Fatal(err)
	}
	if err := waitReady(m.etcd, 30*time.Second); err != nil {
		c.t.Fatalf("member %s after restart: %v", m.name, err)
	}
}

// WaitHealthy waits until every running member answers a linearizable
// read (the cluster has a leader and a quorum).
func (c *Cluster) WaitHealthy(t testing.TB, limit time.Duration) {
	t.Helper()
	cli := c.Client(t)
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster not healthy after %s: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closeAll stops every member abruptly (a graceful stop would hand
// leadership over from member to member as they go).
func (c *Cluster) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.etcd != nil {
			m.etcd.Server.HardStop()
			m.etcd.Close()
			m.etcd = nil
		}
	}
}
