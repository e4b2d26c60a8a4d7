// Package troupetest helps test troupe handlers and apps, from one handler
// without a broker to a whole choreography on the embedded broker.
//
// # One handler, no broker
//
// [Handle] runs a handler on one event and returns a [Result]: the error
// the handler returned, what a broker would do next ([Outcome]), and the
// events it published, with the ids, correlation and causation ids a real
// delivery gives them:
//
//	res := troupetest.Handle(t, OrderPlaced, charge, OrderPlacedV1{OrderID: "7"},
//		troupetest.As("payment.charge"), troupetest.Publishes(PaymentSucceeded),
//		troupetest.WithCorrelationID("order-7"))
//	if res.Err != nil { ... }
//	paid := troupetest.Events(t, res.Published, PaymentSucceeded)
//
// To test a handler as your app wires it (its deadline, retries, declared
// topics), build the app on a [Recorder], an in-memory transport that keeps
// publishes instead of sending them, and hand an event to one of its
// subscriptions with [Deliver]:
//
//	app := shop.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: troupetest.NewRecorder()}))
//	res := troupetest.Deliver(t, app, "payment.charge", OrderPlacedV1{OrderID: "7"}, troupetest.WithAttempt(8))
//
// Nothing travels between subscriptions on a Recorder: each Deliver is one
// handler call, and the test decides what comes next.
//
// # A whole app
//
// [Config] fills a troupe.Config with test defaults (embedded broker in a
// temporary directory, no HTTP server, quiet logs) and [Start] starts the
// app and stops it when the test ends. An [Observer], set up with [Observe]
// before the app starts, sees every event of one topic, so a test can wait
// for a business transaction to reach it:
//
//	app := shop.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
//	paid := troupetest.Observe(t, app, PaymentSucceeded)
//	troupetest.Start(t, app)
//	ctx := troupe.WithCorrelationID(app.Context(t.Context()), "order-7")
//	troupe.Publish(ctx, OrderPlaced, OrderPlacedV1{OrderID: "7"})
//	ev := paid.WaitCorrelation(t, "order-7")
//
// The rule: observers are declared before Start, because subscriptions are
// declared and consumed at start. An observer is a hidden service of the app
// with its own subscription, so it never takes events from the app's own.
//
// [RecordPublishes], also before Start, lists the types of everything the
// app publishes: the witness that a bad request published nothing.
//
// # Failures
//
// [FailFirst] wraps a handler so the first n attempts at each event fail,
// to test retries and dead letters; [DeadLetters] waits until a
// subscription holds dead letters and returns them.
//
// Every helper that waits gives up after [DefaultTimeout] and fails the test
// with what it saw. Helpers fail the test with t.Fatalf, so call them from
// the test's goroutine.
//
// # Time
//
// [NewClock] returns a fake clock that schedules and delayed events of
// package outbox accept (outbox.Options.Clock): [Clock.Advance] moves it
// on and fires what fell due, so a test of a daily digest runs a month in
// milliseconds.
package troupetest
