package natsjs_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// natsServerBin is the nats-server the cluster test runs, three times.
const natsServerBin = "/usr/sbin/nats-server"

// TestClusterSurvivesALostNode runs a three-node JetStream cluster on
// loopback, keeps the streams on all three nodes, kills the node that leads
// the events stream in the middle of a flow, and checks that every event
// whose publish was confirmed is handled.
func TestClusterSurvivesALostNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := os.Stat(natsServerBin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: %v (install Debian's nats-server)", natsServerBin, err)
		}
		t.Skipf("no %s (apt-get install nats-server); skipping the cluster test", natsServerBin)
	}
	cl := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The cluster needs a moment to elect a meta leader before streams can
	// be created; retry the connect until then.
	var tr *natsjs.Transport
	waitUntil(t, 60*time.Second, "the cluster to accept a replicated stream", func() bool {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		var err error
		tr, err = natsjs.Connect(actx, cl.urls(), natsjs.Config{Namespace: "cluster", Replicas: 3})
		if err != nil {
			t.Logf("not yet: %v", err)
		}
		return err == nil
	})
	defer tr.Close(context.Background())

	sub := transport.Subscription{SubscriptionRef: transport.SubscriptionRef{Service: "s", Name: "n"}, Topic: "flow",
		Lease: 3 * time.Second, Concurrency: 8}
	var mu sync.Mutex
	handled := map[string]int{}
	c, err := tr.Consume(ctx, sub, func(ctx context.Context, d *transport.Delivery) error {
		mu.Lock()
		handled[d.ID]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())

	const total = 3000
	var confirmed sync.Map
	var sent, retried atomic.Int64
	killed := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := range total {
			if i == total/3 {
				close(killed) // the main goroutine kills a node now
			}
			m := &transport.Message{ID: fmt.Sprintf("ev-%05d", i), Type: "flow.v1", Source: "/cluster", Time: time.Now(), Data: []byte(`{}`)}
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err := tr.Publish(pctx, m)
				pcancel()
				if err == nil {
					confirmed.Store(m.ID, true)
					sent.Add(1)
					break
				}
				retried.Add(1) // the same id again: the stream drops a copy
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	<-killed
	leader := cl.streamLeader(t, "TROUPE_cluster_EVENTS@flow")
	t.Logf("killing %s, the leader of the events stream, after %d confirmed publishes", leader, sent.Load())
	cl.kill(t, leader)

	select {
	case <-pubDone:
	case <-ctx.Done():
		t.Fatalf("publishing did not finish: %d of %d confirmed", sent.Load(), total)
	}
	missing := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		confirmed.Range(func(k, _ any) bool {
			if handled[k.(string)] == 0 {
				n++
			}
			return true
		})
		return n
	}
	waitUntil(t, 90*time.Second, "every confirmed event to be handled", func() bool { return missing() == 0 })
	mu.Lock()
	dups := 0
	for _, n := range handled {
		dups += n - 1
	}
	mu.Unlock()
	t.Logf("3-node cluster, R3 streams, stream leader killed: %d confirmed, %d handled, %d handled twice, %d publishes retried during the failover",
		sent.Load(), len(handled), dups, retried.Load())
}

type cluster struct {
	ports []int
	names []string
	procs map[string]*exec.Cmd
	mu    sync.Mutex
}

func (c *cluster) urls() string {
	var us []string
	for _, p := range c.ports {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(us, ",")
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{procs: map[string]*exec.Cmd{}}
	var routes []string
	clusterPorts := make([]int, n)
	for i := range n {
		c.ports = append(c.ports, freePort(t))
		clusterPorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]))
		c.names = append(c.names, fmt.Sprintf("node%d", i+1))
	}
	dir := t.TempDir()
	for i := range n {
		name := c.names[i]
		cmd := exec.Command(natsServerBin,
			"-a", "127.0.0.1", "-p", fmt.Sprint(c.ports[i]), "-n", name,
			"-js", "-sd", filepath.Join(dir, name),
			"--cluster_name", "troupe-test",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]),
			"--routes", strings.Join(routes, ","),
			"-l", filepath.Join(dir, name+".log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.procs[name] = cmd
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			_ = p.Process.Signal(syscall.SIGKILL)
			_ = p.Wait()
		}
	})
	return c
}

// streamLeader names the node that leads a stream.
func (c *cluster) streamLeader(t *testing.T, stream string) string {
	t.Helper()
	nc, err := nats.Connect(c.urls())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream %s is not replicated on three nodes: %+v", stream, info.Cluster)
	}
	return info.Cluster.Leader
}

func (c *cluster) kill(t *testing.T, name string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[name]
	if p == nil {
		t.Fatalf("no node %s", name)
	}
	_ = p.Process.Signal(syscall.SIGKILL)
	_ = p.Wait()
	delete(c.procs, name)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
