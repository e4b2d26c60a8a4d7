package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver the outbox documents for PostgreSQL

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Scenario 4: the transactional outbox. Each of 8 writers runs
// transactions that insert an order row and publish its event; the clock
// runs until a subscription on the embedded broker has handled every
// event. "outbox" writes the event in the transaction (outbox.PublishTx)
// and the relay publishes it after the commit; "dual write" commits, then
// calls troupe.Publish: what the outbox replaces, which loses the event
// if the process dies in between. The difference is the price of the
// guarantee.

const postgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

type outboxOrder struct {
	OrderID int64 `json:"order_id"`
	Amount  int64 `json:"amount_cents"`
}

var outboxTopic = troupe.NewTopic[outboxOrder]("order_recorded", 1)

func outboxPlan(e *env) []*Measure {
	var out []*Measure
	for _, db := range []string{"sqlite", "postgres"} {
		if db == "postgres" && e.pgSkip != "" {
			continue
		}
		for _, mode := range []string{"outbox", "dual write"} {
			out = append(out, &Measure{Scenario: "outbox", Broker: "embedded", Case: db, Client: "troupe " + mode, Runs: e.o.runs,
				Run: func(ctx context.Context) (Metrics, error) { return outboxRun(ctx, e, db, mode == "outbox", e.outboxTx) }})
		}
	}
	return out
}

func pingPostgres() error {
	db, err := sql.Open("pgx", postgresURL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func outboxRun(ctx context.Context, e *env, dbKind string, useOutbox bool, n int) (Metrics, error) {
	prefix := unique("bench_")
	var db *sql.DB
	var err error
	switch dbKind {
	case "sqlite":
		db, err = outbox.OpenSQLite(filepath.Join(e.dataDir, prefix+".db"))
	default:
		db, err = sql.Open("pgx", postgresURL)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	orders := prefix + "_orders"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+orders+" (id bigint PRIMARY KEY, amount bigint)"); err != nil {
		return nil, err
	}
	ob, err := outbox.New(db, outbox.Options{Prefix: prefix, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, t := range []string{orders, prefix + "_outbox", prefix + "_inbox", prefix + "_periods"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + t)
		}
	}()

	ns := unique("outbox")
	tr, err := e.srv.Connect(ctx, natsjs.Config{Namespace: ns, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer func() {
		deleteTroupeStreams(tr.Conn(), ns)
		_ = tr.Close(context.Background())
	}()
	var handled atomic.Int64
	done := make(chan struct{})
	a := troupe.New(troupe.Config{Name: ns, Transport: tr, HTTPAddr: "off", Logger: quiet})
	a.Service("orders").Publishes(outboxTopic)
	troupe.Subscribe(a.Service("billing"), outboxTopic, "invoice", func(ctx context.Context, ev troupe.Event[outboxOrder]) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if useOutbox {
		outbox.Attach(a, ob)
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	defer stopApp(a)
	actx := a.Context(ctx)
	insert := "INSERT INTO " + orders + " (id, amount) VALUES (?, ?)"
	if ob.Dialect() == outbox.Postgres {
		insert = "INSERT INTO " + orders + " (id, amount) VALUES ($1, $2)"
	}
	one := func(i int64) error {
		tx, err := db.BeginTx(actx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(actx, insert, i, 4200); err != nil {
			return err
		}
		o := outboxOrder{OrderID: i, Amount: 4200}
		if useOutbox {
			if err := outbox.PublishTx(actx, tx, outboxTopic, o); err != nil {
				return err
			}
			return tx.Commit()
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return troupe.Publish(actx, outboxTopic, o)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, publishers)
	for range publishers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := one(i); err != nil {
					errc <- fmt.Errorf("order %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	committed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if err := waitProgress(ctx, done, handled.Load, time.Minute); err != nil {
		return nil, fmt.Errorf("%w (of %d)", err, n)
	}
	return Metrics{"committed": float64(n) / committed.Seconds(), "rate": float64(n) / time.Since(start).Seconds()}, nil
}
