package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/troupetest"
)

// TestTraceCausalOrder runs the two-step flow with a retry and a dead
// letter on every broker and reads the transaction back from a second
// app, as an operator's process would.
func TestTraceCausalOrder(t *testing.T) {
	for _, b := range brokers {
		onBroker(t, b, func(t *testing.T, cfg troupe.Config) {
			app := choreography(cfg)
			journal.Install(app)
			troupetest.Start(t, app)

			ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-"+cfg.Name)
			if err := troupe.Publish(ctx, topicOrderPlaced, orderPlaced{OrderID: "o1"}); err != nil {
				t.Fatal(err)
			}
			troupetest.DeadLetters(t, app, "shipping.ship", 1)

			reader := app
			if b.url != "" { // another process's view: a client of the same broker
				reader = choreography(troupetest.Config(t, troupe.Config{Name: cfg.Name, Broker: cfg.Broker}))
				if err := reader.StartClient(context.Background(), "", ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = reader.Stop(context.Background()) })
			}
			got := traceOf(t, reader, "order-"+cfg.Name, 5)

			type step struct {
				kind    journal.Kind
				typ     string
				sub     string
				attempt int
				outcome journal.Outcome
				depth   int
			}
			want := []step{
				{journal.KindPublish, "order_placed.v1", "", 0, journal.Published, 0},
				{journal.KindHandle, "order_placed.v1", "payment.charge", 1, journal.Retried, 1},
				{journal.KindHandle, "order_placed.v1", "payment.charge", 2, journal.Handled, 1},
				{journal.KindPublish, "payment_succeeded.v1", "payment.charge", 2, journal.Published, 2},
				{journal.KindHandle, "payment_succeeded.v1", "shipping.ship", 1, journal.DeadLettered, 3},
			}
			if len(got) != len(want) {
				t.Fatalf("trace has %d entries, want %d:\n%s", len(got), len(want), dump(got))
			}
			for i, w := range want {
				g := got[i]
				if (step{g.Kind, g.Type, g.Subscription, g.Attempt, g.Outcome, g.Depth}) != w {
					t.Errorf("entry %d = %+v, want %+v\n%s", i, g, w, dump(got))
				}
			}
			if got[1].Error != "card network timed out" || !strings.Contains(got[4].Error, "no address for order o1") {
				t.Errorf("errors: %q, %q", got[1].Error, got[4].Error)
			}
			if got[3].Service != "payment" || got[4].Service != "shipping" {
				t.Errorf("services: %q, %q", got[3].Service, got[4].Service)
			}
			if got[3].CausationID != got[0].EventID || got[4].EventID != got[3].EventID {
				t.Errorf("causation broken:\n%s", dump(got))
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time.Before(got[i-1].Time) {
					t.Errorf("entry %d starts before entry %d", i, i-1)
				}
			}

			if _, err := journal.Trace(context.Background(), reader, "no-such-order"); !errors.Is(err, journal.ErrNotFound) || !strings.Contains(err.Error(), "no-such-order") {
				t.Errorf("unknown correlation id: %v", err)
			}
		})
	}
}

func dump(es []journal.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s%s %s %s #%d %s %q\n", strings.Repeat("  ", e.Depth), e.Kind, e.Type, e.Subscription, e.Attempt, e.Outcome, e.Error)
	}
	return b.String()
}

// TestRetentionOnNATS checks that the options reach the journal stream.
func TestRetentionOnNATS(t *testing.T) {
	for _, b := range brokers[:2] {
		onBroker(t, b, func(t *testing.T, cfg troupe.Config) {
			app := choreography(cfg)
			journal.Install(app, journal.MaxAge(90*time.Minute), journal.MaxBytes(8<<20))
			troupetest.Start(t, app)
			js, err := jetstream.New(app.Transport().(*natsjs.Transport).Conn())
			if err != nil {
				t.Fatal(err)
			}
			s, err := js.Stream(context.Background(), "TROUPE_"+cfg.Name+"_JOURNAL")
			if err != nil {
				t.Fatal(err)
			}
			c := s.CachedInfo().Config
			if c.MaxAge != 90*time.Minute || c.MaxBytes != 8<<20 || c.Discard != jetstream.DiscardOld {
				t.Errorf("journal stream: MaxAge %s, MaxBytes %d, Discard %v", c.MaxAge, c.MaxBytes, c.Discard)
			}
		})
	}
}

// TestWriteFailureKeepsHandling deletes the journal stream under a running
// app: its writes fail, and the handler's event is handled all the same,
// once.
func TestWriteFailureKeepsHandling(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "jfail"}))
	app.Service("orders").Publishes(topicOrderPlaced)
	var mu sync.Mutex
	attempts := map[string]int{}
	handled := make(chan string, 4)
	troupe.Subscribe(app.Service("audit"), topicOrderPlaced, "log", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		mu.Lock()
		attempts[ev.Data.OrderID]++
		mu.Unlock()
		handled <- ev.Data.OrderID
		return nil
	})
	w := journal.Install(app)
	troupetest.Start(t, app)

	js, err := jetstream.New(app.Transport().(*natsjs.Transport).Conn())
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), "TROUPE_jfail_JOURNAL"); err != nil {
		t.Fatal(err)
	}
	if err := troupe.Publish(app.Context(context.Background()), topicOrderPlaced, orderPlaced{OrderID: "o1"}); err != nil {
		t.Fatalf("publish failed with the journal gone: %v", err)
	}
	select {
	case <-handled:
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("the event was not handled with the journal gone")
	}
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for w.Stats().Failed < 2 { // the publish and the handling
		if time.Now().After(deadline) {
			t.Fatalf("journal stats %+v: want 2 failed writes", w.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dls, err := app.DeadLetters(context.Background(), "audit.log", 0); err != nil || len(dls) != 0 {
		t.Errorf("dead letters %v, %v", dls, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts["o1"] != 1 {
		t.Errorf("handled %d times, want once", attempts["o1"])
	}
}

// TestTailFollowsEntries follows the journal with a filter while the flow
// runs.
func TestTailFollowsEntries(t *testing.T) {
	for _, b := range brokers {
		onBroker(t, b, func(t *testing.T, cfg troupe.Config) {
			app := choreography(cfg)
			journal.Install(app)
			troupetest.Start(t, app)

			ctx, cancel := context.WithTimeout(context.Background(), troupetest.DefaultTimeout)
			defer cancel()
			got := make(chan journal.Entry, 16)
			done := make(chan error, 1)
			f := journal.Filter{Since: time.Now(), Outcomes: []journal.Outcome{journal.Retried, journal.DeadLettered}}
			go func() { done <- journal.Tail(ctx, app, f, func(e journal.Entry) { got <- e }) }()

			if err := troupe.Publish(app.Context(context.Background()), topicOrderPlaced, orderPlaced{OrderID: "o2"}); err != nil {
				t.Fatal(err)
			}
			var seen []string
			for len(seen) < 2 {
				select {
				case e := <-got:
					seen = append(seen, e.Subscription+" "+string(e.Outcome))
				case err := <-done:
					t.Fatalf("Tail returned early: %v (seen %v)", err, seen)
				case <-ctx.Done():
					t.Fatalf("tail saw %v, want the retry and the dead letter", seen)
				}
			}
			if seen[0] != "payment.charge retried" || seen[1] != "shipping.ship dead-lettered" {
				t.Errorf("tail saw %v", seen)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Tail after cancel: %v", err)
			}
		})
	}
}

// hidden is a real transport with its journal hidden.
type hidden struct{ transport.Transport }

func TestBadUse(t *testing.T) {
	ctx := context.Background()
	// A transport without a journal fails Start.
	tr, err := natsjs.OpenEmbedded(ctx, natsjs.EmbeddedConfig{DataDir: t.TempDir()}, natsjs.Config{Namespace: "jbad"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	app := choreography(troupetest.Config(t, troupe.Config{Name: "jbad", Transport: hidden{tr}}))
	journal.Install(app)
	if err := app.Start(ctx); !errors.Is(err, journal.ErrUnsupported) {
		t.Errorf("Start on a transport without journal: %v", err)
	}
	_ = app.Stop(ctx)

	// Reading before Start, and an app that never wrote a journal.
	plain := choreography(troupetest.Config(t, troupe.Config{Name: "jnone"}))
	if _, err := journal.Trace(ctx, plain, "x"); !errors.Is(err, troupe.ErrNotStarted) {
		t.Errorf("Trace before start: %v", err)
	}
	troupetest.Start(t, plain)
	if _, err := journal.Trace(ctx, plain, "x"); !errors.Is(err, transport.ErrNoJournal) || !strings.Contains(err.Error(), "journal.Install") {
		t.Errorf("Trace without journal: %v", err)
	}
	if _, err := journal.Trace(ctx, plain, ""); err == nil {
		t.Error("Trace with no correlation id succeeded")
	}
	if err := journal.Tail(ctx, plain, journal.Filter{}, func(journal.Entry) {}); !errors.Is(err, transport.ErrNoJournal) {
		t.Errorf("Tail without journal: %v", err)
	}
}

type paymentFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

// TestCompensatedOutcome: a subscription with OnFailure that fails for good
// is journaled as compensated, with its failure event under it.
func TestCompensatedOutcome(t *testing.T) {
	failed := troupe.NewTopic[paymentFailed]("payment_failed", 1)
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "jcomp"}))
	app.Service("orders").Publishes(topicOrderPlaced)
	payment := app.Service("payment").Publishes(failed)
	troupe.Subscribe(payment, topicOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		return troupe.Permanent(errors.New("card declined"))
	}, troupe.OnFailure(failed, func(ev troupe.Event[orderPlaced], cause error) paymentFailed {
		return paymentFailed{OrderID: ev.Data.OrderID, Reason: cause.Error()}
	}))
	journal.Install(app)
	troupetest.Start(t, app)
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-c1")
	if err := troupe.Publish(ctx, topicOrderPlaced, orderPlaced{OrderID: "c1"}); err != nil {
		t.Fatal(err)
	}
	got := traceOf(t, app, "order-c1", 3)
	if len(got) != 3 || got[1].Outcome != journal.Compensated || !strings.Contains(got[1].Error, "card declined") ||
		got[2].Type != "payment_failed.v1" || got[2].Depth != 2 {
		t.Errorf("trace:\n%s", dump(got))
	}
}

// TestReplayInTrace: a dead letter replayed after a fix shows up as a
// fresh attempt, marked as a replay, under the same event; what the
// replayed attempt publishes goes under it.
func TestReplayInTrace(t *testing.T) {
	var fixed atomic.Bool
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "jreplay"}))
	app.Service("orders").Publishes(topicOrderPlaced)
	payment := app.Service("payment").Publishes(topicPaid)
	troupe.Subscribe(payment, topicOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		if !fixed.Load() {
			return troupe.Permanent(errors.New("card processor down"))
		}
		return troupe.Publish(ctx, topicPaid, paymentSucceeded(ev.Data))
	}, troupe.Emits(topicPaid))
	troupe.Subscribe(app.Service("shipping"), topicPaid, "ship", func(context.Context, troupe.Event[paymentSucceeded]) error { return nil })
	journal.Install(app)
	troupetest.Start(t, app)

	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-r1")
	if err := troupe.Publish(ctx, topicOrderPlaced, orderPlaced{OrderID: "r1"}); err != nil {
		t.Fatal(err)
	}
	dls := troupetest.DeadLetters(t, app, "payment.charge", 1)
	fixed.Store(true)
	if err := app.Replay(context.Background(), "payment.charge", dls[0].ID); err != nil {
		t.Fatal(err)
	}
	got := traceOf(t, app, "order-r1", 5)
	want := []string{
		"0 publish order_placed.v1  #0 r0 published",
		"1 handle order_placed.v1 payment.charge #1 r0 dead-lettered",
		"1 handle order_placed.v1 payment.charge #1 r1 handled",
		"2 publish payment_succeeded.v1 payment.charge #1 r1 published",
		"3 handle payment_succeeded.v1 shipping.ship #1 r0 handled",
	}
	var have []string
	for _, e := range got {
		have = append(have, fmt.Sprintf("%d %s %s %s #%d r%d %s", e.Depth, e.Kind, e.Type, e.Subscription, e.Attempt, e.Replays, e.Outcome))
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}
