// Package troupe is a framework and runtime for microservices that cooperate
// by choreography: each service subscribes to the events it cares about, does
// its part, and publishes new events. No orchestrator decides the flow; the
// flow is the sum of the subscriptions.
//
// troupe keeps the pattern's promises (loose coupling, independent scaling,
// resilience) and removes its usual costs: it runs on an embedded, durable
// broker by default, so one `go run` starts a whole system, and the same code
// runs one process per service against NATS JetStream or RabbitMQ when it
// grows.
//
// # Declaring a choreography
//
// Topics are typed and named. The name and version, not the Go type, identify
// a topic on the wire, so renaming a type never orphans events in flight:
//
//	var OrderPlaced = troupe.NewTopic[OrderPlacedV1]("order_placed", 1)
//	var PaymentSucceeded = troupe.NewTopic[PaymentSucceededV1]("payment_succeeded", 1)
//
// An [App] holds services; each service declares what it publishes and what
// it subscribes to:
//
//	app := troupe.New(troupe.Config{Name: "shop"})
//	orders := app.Service("orders").Publishes(OrderPlaced)
//	payment := app.Service("payment").Publishes(PaymentSucceeded)
//	troupe.Subscribe(payment, OrderPlaced, "charge",
//		func(ctx context.Context, ev troupe.Event[OrderPlacedV1]) error {
//			// ... charge the card ...
//			return troupe.Publish(ctx, PaymentSucceeded, PaymentSucceededV1{OrderID: ev.Data.OrderID})
//		})
//	app.Main()
//
// [App.Start] checks the declaration first and reports every mistake with its
// fix: a subscription to a topic nobody publishes, two subscriptions of a
// service with one name, a type JSON cannot encode.
//
// # Delivery
//
// Every subscription gets its own copy of each event on its topic (fan-out);
// the processes that run one service share that service's subscriptions
// (competing consumers). [Publish] returns once the broker has stored the
// event. A handler that returns nil acknowledges its event; one that returns
// an error has the event redelivered by the broker after an exponential
// backoff with jitter, so a crash loses nothing; after the last attempt
// ([MaxAttempts], default 8) the event moves to the subscription's dead
// letters with the error and the attempt count, where [App.DeadLetters] lists
// it and [App.Replay] sends it back to that one subscription. [Permanent]
// skips the retries; [RetryAfter] picks the delay; a panic counts as an
// error; [Deadline] bounds each attempt.
//
// Delivery is at least once: a handler can see an event twice (after a crash,
// or a lease that ran out). Make handlers idempotent, for example by keying
// effects on [Envelope.ID].
//
// # Business transactions
//
// Events published inside a handler join the handled event's business
// transaction: they carry its correlation id, take its id as their causation
// id, and get ids derived from it, so a retried handler publishes the same ids
// and the broker drops the copies. [WithCorrelationID] starts a transaction
// under an id of your choosing, such as an order id.
//
// # Failure paths, versions and order
//
// [OnFailure] declares a subscription's compensation: when its handler fails
// for good, troupe publishes the declared failure event in the same
// business transaction (a refund, a cancellation) and settles the event;
// the topology draws that path. [CircuitBreaker] pauses a subscription
// whose dependency is down, holding its events instead of burning their
// attempts. [Upcast] lets a topic read older versions of its events as the
// current type; an unknown version is dead-lettered with a reason.
// [OrderBy] gives a topic an ordering key: each key's events are handled in
// publish order, one at a time, even with several processes, while keys run
// in parallel.
//
// # Answering the caller
//
// [Request] publishes an event and waits for the first event of its
// transaction on the given outcome topics, so an HTTP handler can answer
// with the result of a choreography; it listens on the broker, so the
// service that answers may run in another process.
//
// # Around the core
//
// Package outbox commits events with the service's own database
// transaction and gives handlers an inbox so their effects happen once;
// it also holds delayed events and schedules. Packages tracing, metrics and
// journal observe every publish and handling through [Middleware]: each is
// told the [Outcome] troupe decided for an attempt ([Middleware.Settled])
// and learns which handling made a publish ([HandlingOf]); package
// topology draws the declaration and package dashboard shows it live;
// package contract checks changes to events against who reads what;
// package ops adds operator commands (tail, trace, dlq); package troupetest
// tests handlers and whole apps.
//
// # Wire format
//
// Events are CloudEvents 1.0 in binary content mode: attributes in ce-
// headers (ce-id, ce-type "<topic>.v<N>", ce-source, ce-time,
// ce-correlationid, ce-causationid, ce-partitionkey, and any extension), the
// W3C traceparent, the media type application/json (ce-datacontenttype on
// NATS, the content-type property on RabbitMQ), and the JSON data as the
// body. Any NATS or AMQP client in any language can publish and read them;
// docs/brokers.md lists every header a producer must send.
//
// # Brokers
//
// The broker is chosen by URL ([Config.Broker], --broker): "embedded:" (the
// default) runs a NATS JetStream server inside the process with its files in
// the data directory; "embedded:?listen=127.0.0.1:4222" also lets other
// processes connect; "nats://host:4222" uses an external NATS server;
// "amqp://user:pass@host:5672/vhost" uses RabbitMQ. The same code runs on
// all of them, all in one process or one process per service
// ([Config.Services], --services).
package troupe
