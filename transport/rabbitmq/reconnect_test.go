package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// TestReconnect cuts the transport's connections twice in the middle of a
// flow, once from the client side and once from the broker (rabbitmqctl
// close_all_connections, in a virtual host of the test's own so that no one
// else's connections are touched), and checks that every event published is
// handled, that publishes during the outage either succeed or fail visibly,
// and that retries and dead letters work on the new connections.
func TestReconnect(t *testing.T) {
	dialRaw(t)
	vhost, closeAll := testVhost(t)
	outages := []outage{{"cutting the sockets from the client side", rabbitmq.DropConnections}}
	if closeAll != nil {
		outages = append(outages, outage{"closing the connections from the broker", func(*rabbitmq.Transport) { closeAll() }})
	}
	flowThroughOutages(t, vhostURL(t, vhost), 2000, outages)
}

// TestBrokerRestart restarts RabbitMQ (rabbitmqctl stop_app, start_app) in
// the middle of a flow. It disturbs everyone using the broker, so it runs
// only when TROUPE_TEST_RESTART_RABBITMQ=1.
func TestBrokerRestart(t *testing.T) {
	if os.Getenv("TROUPE_TEST_RESTART_RABBITMQ") != "1" {
		t.Skip("restarts the broker for everyone; set TROUPE_TEST_RESTART_RABBITMQ=1 to run it")
	}
	dialRaw(t)
	vhost, _ := testVhost(t)
	flowThroughOutages(t, vhostURL(t, vhost), 5000, []outage{{"restarting RabbitMQ", func(*rabbitmq.Transport) {
		for _, cmd := range []string{"stop_app", "start_app"} {
			if out, err := exec.Command("rabbitmqctl", "-q", cmd).CombinedOutput(); err != nil {
				t.Fatalf("rabbitmqctl %s: %v: %s", cmd, err, out)
			}
		}
	}}})
}

// outage is something that takes the broker connection away.
type outage struct {
	what string
	do   func(*rabbitmq.Transport)
}

// flowThroughOutages publishes total events and handles them while the
// outages happen one after the other, spread over the flow.
func flowThroughOutages(t *testing.T, brokerURL string, total int, outages []outage) {
	const batch = 20
	ctx := t.Context()
	tr, err := rabbitmq.Connect(ctx, brokerURL, rabbitmq.Config{Namespace: "reconnect"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tr.Close(ctx)
	})
	sub := transport.Subscription{
		SubscriptionRef: transport.SubscriptionRef{Service: "billing", Name: "charge"},
		Topic:           "orders",
		Retry:           transport.RetryPolicy{MaxAttempts: 50, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Jitter: transport.NoJitter},
	}
	if err := tr.Declare(ctx, sub); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		handled = make(map[string]int)
		retried atomic.Int64
	)
	_, err = tr.Consume(ctx, sub, func(_ context.Context, d *transport.Delivery) error {
		// Every tenth event fails its first attempt, so retries cross the
		// outages too; "poison" events always fail, for the dead letters.
		if strings.HasPrefix(d.ID, "poison") {
			return transport.Permanent(errors.New("poison"))
		}
		if d.Attempt == 1 && d.Data[len(d.Data)-2] == '0' {
			retried.Add(1)
			return errors.New("first attempt fails")
		}
		mu.Lock()
		handled[d.ID]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var (
		ids       []string
		published = make(chan int, total/batch)
		pubErrors atomic.Int64
	)
	for i := range total {
		ids = append(ids, fmt.Sprintf("ev-%05d", i))
	}
	go func() {
		defer close(published)
		for i := 0; i < total; i += batch {
			var msgs []*transport.Message
			for j := i; j < i+batch; j++ {
				msgs = append(msgs, &transport.Message{ID: ids[j], Type: "orders.v1", Source: "reconnect-test",
					Time: time.Now(), Data: fmt.Appendf(nil, `{"n":%d}`, j)})
			}
			// A publish cut off by the outage fails; publishing the batch
			// again is safe, as handlers must be idempotent anyway.
			for {
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := tr.Publish(pctx, msgs...)
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				pubErrors.Add(1)
				t.Logf("publish failed, publishing the batch again: %v", err)
			}
			published <- i + batch
			time.Sleep(2 * time.Millisecond)
		}
	}()

	waitPublished := func(n int) {
		t.Helper()
		for p := range published {
			if p >= n {
				return
			}
		}
	}
	for i, o := range outages {
		waitPublished((i + 1) * total / (len(outages) + 1))
		t.Log(o.what)
		o.do(tr)
	}
	waitPublished(total)

	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			mu.Lock()
			for _, id := range ids {
				if handled[id] == 0 && len(missing) < 10 {
					missing = append(missing, id)
				}
			}
			mu.Unlock()
			t.Fatalf("%d of %d events handled after the reconnects; missing, first few: %v", n, total, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dups := 0
	mu.Lock()
	for _, k := range handled {
		dups += k - 1
	}
	mu.Unlock()

	// Dead letters work on the new connections.
	poison := &transport.Message{ID: "poison-1", Type: "orders.v1", Source: "reconnect-test", Data: []byte(`{}`)}
	if err := tr.Publish(ctx, poison); err != nil {
		t.Fatal(err)
	}
	for {
		dls, err := tr.DeadLetters(ctx, sub.SubscriptionRef, 0)
		if err == nil && len(dls) == 1 {
			if dls[0].Message.ID != poison.ID {
				t.Errorf("dead letter of %q, want %q", dls[0].Message.ID, poison.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters after the reconnects: %v, %v", dls, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("published %d events in batches of %d across %d outages: %d publishes failed and were repeated; "+
		"all handled, %d duplicate deliveries, %d first attempts failed on purpose and were retried",
		total, batch, len(outages), pubErrors.Load(), dups, retried.Load())
}

// testVhost creates a virtual host for one test with rabbitmqctl, gives
// the broker URL's user access to it, and deletes it when the test ends.
// It returns a function that closes every connection to the vhost from the
// broker's side. Without rabbitmqctl (a remote broker), it uses the URL's
// own vhost and returns nil.
func testVhost(t *testing.T) (string, func()) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Log("no rabbitmqctl: testing client-side connection loss only")
		return "", nil
	}
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	vhost := fmt.Sprintf("troupe-test-%d", time.Now().UnixNano())
	ctl := func(args ...string) error {
		out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ctl("add_vhost", vhost); err != nil {
		t.Logf("cannot create a vhost (%v): testing client-side connection loss only", err)
		return "", nil
	}
	t.Cleanup(func() {
		if err := ctl("delete_vhost", vhost); err != nil {
			t.Log(err)
		}
	})
	if err := ctl("set_permissions", "-p", vhost, u.User.Username(), ".*", ".*", ".*"); err != nil {
		t.Fatal(err)
	}
	return vhost, func() {
		if err := ctl("close_all_connections", "--vhost", vhost, "troupe reconnect test"); err != nil {
			t.Error(err)
		}
	}
}

// vhostURL returns the broker URL with another vhost; "" keeps the URL's.
func vhostURL(t *testing.T, vhost string) string {
	if vhost == "" {
		return brokerURL()
	}
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + vhost
	u.RawPath = "/" + url.PathEscape(vhost)
	return u.String()
}
