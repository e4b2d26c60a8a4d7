package troupetest_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// Handle gives published events exactly the ids a real run on the broker
// gives them, so tests can assert ids.
func TestHandleMatchesARealRun(t *testing.T) {
	t.Parallel()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, charge)
	placed := troupetest.Observe(t, app, orderPlaced)
	paid := troupetest.Observe(t, app, paymentDone)
	troupetest.Start(t, app)
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-7")
	if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: "7", Total: 42}); err != nil {
		t.Fatal(err)
	}
	in := placed.WaitCorrelation(t, "order-7")
	real := paid.WaitCorrelation(t, "order-7")

	res := troupetest.Handle(t, orderPlaced, charge, OrderPlaced{OrderID: "7", Total: 42},
		troupetest.AppName("shop"), troupetest.As("payment.charge"), troupetest.Publishes(paymentDone),
		troupetest.WithID(in.ID), troupetest.WithCorrelationID("order-7"))
	if res.Err != nil || res.Outcome != troupetest.Ack {
		t.Fatalf("err %v, outcome %s", res.Err, res.Outcome)
	}
	got := troupetest.Events(t, res.Published, paymentDone)
	if len(got) != 1 {
		t.Fatalf("published %d payment_done events, want 1: %+v", len(got), res.Published)
	}
	want := real.Envelope
	want.Attempt, want.Subscription, want.Time = 0, "", got[0].Time
	if !reflect.DeepEqual(got[0].Envelope, want) || got[0].Data != real.Data {
		t.Errorf("Handle published\n  %+v\na real run published\n  %+v", got[0], real)
	}
	if got[0].CausationID != in.ID || got[0].CorrelationID != "order-7" || got[0].Source != "/shop/payment" {
		t.Errorf("envelope %+v", got[0].Envelope)
	}
}

// Deliver runs the handler as the app wires it, reports the outcome a broker
// would choose, and keeps each call's publishes apart.
func TestDeliverOnARecorder(t *testing.T) {
	t.Parallel()
	rec := troupetest.NewRecorder()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: rec}))
	declareShop(app, charge, troupe.MaxAttempts(3))

	ok := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "1", Total: 5}, troupetest.WithID("ev-1"))
	again := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "1", Total: 5}, troupetest.WithID("ev-1"), troupetest.WithAttempt(2))
	other := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "2", Total: 5}, troupetest.WithID("ev-2"))
	for _, r := range []troupetest.Result{ok, again, other} {
		if r.Err != nil || r.Outcome != troupetest.Ack || len(r.Published) != 1 {
			t.Fatalf("result %+v", r)
		}
	}
	if ok.Published[0].ID != again.Published[0].ID {
		t.Errorf("a retry published id %s, the first attempt %s: ids must be derived", again.Published[0].ID, ok.Published[0].ID)
	}
	if ok.Published[0].ID == other.Published[0].ID {
		t.Errorf("two events led to one id %s", ok.Published[0].ID)
	}
	if ok.Event.CorrelationID != "ev-1" || ok.Event.Attempt != 1 || ok.Event.Source != "/shop" || ok.Event.Subscription != "payment.charge" {
		t.Errorf("default envelope %+v", ok.Event)
	}
	if n := len(rec.Published()); n != 3 {
		t.Errorf("recorder holds %d messages, want 3", n)
	}

	bad := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "3"})
	if !troupe.IsPermanent(bad.Err) || bad.Outcome != troupetest.DeadLetter || len(bad.Published) != 0 {
		t.Errorf("a permanent error: %+v", bad)
	}

	// Publishes at the edge are recorded too, and checked as a broker would.
	rec.Reset()
	edge := app.Context(context.Background())
	if err := troupe.Publish(edge, orderPlaced, OrderPlaced{OrderID: "4"}); err != nil {
		t.Fatal(err)
	}
	if msgs := rec.Published(); len(msgs) != 1 || msgs[0].Type != "order_placed.v1" || msgs[0].CorrelationID != msgs[0].ID {
		t.Errorf("edge publish recorded as %+v", msgs)
	}
	type blob struct{ B string }
	big := troupe.NewTopic[blob]("blob", 1)
	app2 := troupe.New(troupetest.Config(t, troupe.Config{Name: "big", Transport: troupetest.NewRecorder()}))
	app2.Service("s").Publishes(big)
	troupetest.Start(t, app2)
	if err := troupe.Publish(app2.Context(context.Background()), big, blob{B: strings.Repeat("x", 2<<20)}); !errors.Is(err, troupe.ErrTooLarge) {
		t.Errorf("2 MiB event: %v, want ErrTooLarge", err)
	}
}

func TestOutcomeFollowsTheRetryPolicy(t *testing.T) {
	t.Parallel()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: troupetest.NewRecorder()}))
	declareShop(app, troupetest.FailFirst[OrderPlaced](100, nil, nil), troupe.MaxAttempts(3))
	for attempt, want := range map[int]troupetest.Outcome{1: troupetest.Retry, 2: troupetest.Retry, 3: troupetest.DeadLetter} {
		res := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "1"}, troupetest.WithAttempt(attempt))
		if !errors.Is(res.Err, troupetest.ErrInjected) || res.Outcome != want {
			t.Errorf("attempt %d: %v, %s; want ErrInjected, %s", attempt, res.Err, res.Outcome, want)
		}
	}
}

func TestHandleReportsPanicsAndUndeclaredTopics(t *testing.T) {
	t.Parallel()
	res := troupetest.Handle(t, orderPlaced, func(context.Context, troupe.Event[OrderPlaced]) error { panic("boom") }, OrderPlaced{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "panic: boom") || res.Outcome != troupetest.Retry {
		t.Errorf("panic: %v, %s", res.Err, res.Outcome)
	}
	res = troupetest.Handle(t, orderPlaced, charge, OrderPlaced{OrderID: "1", Total: 1}) // no Publishes(paymentDone)
	if !errors.Is(res.Err, troupe.ErrUndeclaredTopic) {
		t.Errorf("undeclared topic: %v", res.Err)
	}
}

func TestFailFirstCountsPerEvent(t *testing.T) {
	t.Parallel()
	calls := 0
	h := troupetest.FailFirst(2, errors.New("down"), func(context.Context, troupe.Event[OrderPlaced]) error {
		calls++
		return nil
	})
	var errs []string
	for _, id := range []string{"a", "b", "a", "a", "b", "b"} {
		res := troupetest.Handle(t, orderPlaced, h, OrderPlaced{}, troupetest.WithID(id))
		errs = append(errs, id+":"+errText(res.Err))
	}
	if got, want := strings.Join(errs, " "), "a:down b:down a:down a:ok b:down b:ok"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if calls != 2 {
		t.Errorf("the wrapped handler ran %d times, want 2", calls)
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// On the broker, a handler failing its first attempts is retried; one failing
// every attempt ends in the dead letters, and a replay then succeeds.
func TestRetriesAndDeadLettersOnTheBroker(t *testing.T) {
	t.Parallel()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, troupetest.FailFirst(2, nil, charge),
		troupe.MaxAttempts(2), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	paid := troupetest.Observe(t, app, paymentDone)
	troupetest.Start(t, app)
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-1")
	if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: "1", Total: 3}); err != nil {
		t.Fatal(err)
	}
	dls := troupetest.DeadLetters(t, app, "payment.charge", 1)
	if len(dls) != 1 || dls[0].Attempts != 2 || !strings.Contains(dls[0].Error, troupetest.ErrInjected.Error()) {
		t.Fatalf("dead letters %+v", dls)
	}
	if n := len(paid.Events()); n != 0 {
		t.Fatalf("%d payments before the replay", n)
	}
	if err := app.Replay(context.Background(), "payment.charge", dls[0].ID); err != nil {
		t.Fatal(err)
	}
	ev := paid.WaitCorrelation(t, "order-1")
	if ev.Data.OrderID != "1" {
		t.Errorf("payment %+v", ev)
	}
}

func TestHelpersFailTheTestWithTheReason(t *testing.T) {
	t.Parallel()
	rec := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: troupetest.NewRecorder()}))
	declareShop(rec, charge)
	troupetest.Start(t, rec)
	embedded := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(embedded, charge)
	obs := troupetest.Observe(t, embedded, paymentDone)
	obs.Timeout = 200 * time.Millisecond
	troupetest.Start(t, embedded)

	for _, c := range []struct {
		name, want string
		f          func(tb testing.TB)
	}{
		{"unknown subscription", `no subscription "payment.refund"; it has: payment.charge`, func(tb testing.TB) {
			troupetest.Deliver(tb, rec, "payment.refund", OrderPlaced{})
		}},
		{"wrong type", "handles order_placed.v1 of type troupetest_test.OrderPlaced, not troupetest_test.PaymentDone", func(tb testing.TB) {
			troupetest.Deliver(tb, rec, "payment.charge", PaymentDone{})
		}},
		{"no recorder", "does not run on a troupetest.Recorder", func(tb testing.TB) {
			troupetest.Deliver(tb, embedded, "payment.charge", OrderPlaced{})
		}},
		{"Handle-only option", "options As only apply to Handle", func(tb testing.TB) {
			troupetest.Deliver(tb, rec, "payment.charge", OrderPlaced{}, troupetest.As("x.y"))
		}},
		{"observe after start", "call it before Start", func(tb testing.TB) {
			troupetest.Observe(tb, embedded, orderPlaced)
		}},
		{"wait times out", "no matching payment_done.v1 event within 200ms; observed 0", func(tb testing.TB) {
			obs.WaitCorrelation(tb, "never")
		}},
		{"dead letters on a recorder", "runs on a Recorder, which keeps none", func(tb testing.TB) {
			troupetest.DeadLetters(tb, rec, "payment.charge", 1)
		}},
		{"dead letters of an unknown subscription", `no subscription "payment.nope"`, func(tb testing.TB) {
			troupetest.DeadLetters(tb, embedded, "payment.nope", 1)
		}},
	} {
		if msg := mustFail(t, c.f); !strings.Contains(msg, c.want) {
			t.Errorf("%s: failed with %q, want it to say %q", c.name, msg, c.want)
		}
	}
}

// RecordPublishes sees what an app publishes, in order, and Taken forgets
// what it returned.
func TestRecordPublishes(t *testing.T) {
	t.Parallel()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: troupetest.NewRecorder()}))
	declareShop(app, charge)
	pub := troupetest.RecordPublishes(app)
	troupetest.Start(t, app)
	if got := pub.Taken(); got != nil {
		t.Fatalf("before any publish: %v", got)
	}
	ctx := app.Context(context.Background())
	if err := troupe.PublishBatch(ctx, orderPlaced, []OrderPlaced{{OrderID: "1"}, {OrderID: "2"}}); err != nil {
		t.Fatal(err)
	}
	if got := pub.Taken(); len(got) != 2 || got[0] != orderPlaced.Type() || got[1] != orderPlaced.Type() {
		t.Fatalf("after two publishes: %v", got)
	}
	if got := pub.Taken(); got != nil {
		t.Fatalf("taken twice: %v", got)
	}
}

type stockChanged struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

var stockTopic = troupe.NewTopic[stockChanged]("stock_changed", 1)

func init() { troupe.OrderBy(stockTopic, func(s stockChanged) string { return s.SKU }) }

// A Recorder and Deliver carry an event's ordering key as a broker does:
// in what the app published, in the event the handler is given, and in the
// Result.
func TestRecorderAndDeliverKeepTheOrderingKey(t *testing.T) {
	t.Parallel()
	rec := troupetest.NewRecorder()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: rec}))
	var handled string
	troupe.Subscribe(app.Service("stock").Publishes(stockTopic), stockTopic, "count",
		func(_ context.Context, ev troupe.Event[stockChanged]) error { handled = ev.OrderingKey; return nil })
	troupetest.Start(t, app)

	if err := troupe.Publish(app.Context(context.Background()), stockTopic, stockChanged{SKU: "book", Qty: 3}); err != nil {
		t.Fatal(err)
	}
	if pub := rec.Published(); len(pub) != 1 || pub[0].OrderingKey != "book" {
		t.Errorf("published %+v, want one event with ordering key book", pub)
	}
	res := troupetest.Deliver(t, app, "stock.count", stockChanged{SKU: "pen", Qty: 1})
	if handled != "pen" || res.Event.OrderingKey != "pen" {
		t.Errorf("the handler saw ordering key %q and the Result has %q, want pen", handled, res.Event.OrderingKey)
	}
}
