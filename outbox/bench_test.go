package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/troupetest"
)

// BenchmarkCommitAndRelay measures events per second from a transaction
// that writes a business row and its events to the moment the relay has
// published them to the embedded broker (which stores them on disk) and
// deleted their rows. Writers run in parallel (GOMAXPROCS×4 goroutines).
//
//	go test -run '^$' -bench CommitAndRelay -benchtime 2000x ./outbox
func BenchmarkCommitAndRelay(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) database
	}{{"sqlite", sqliteDB}, {"postgres", postgresDB}} {
		for _, perTx := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/events_per_tx=%d", db.name, perTx), func(b *testing.B) {
				benchCommitAndRelay(b, db.open(b), perTx)
			})
		}
	}
}

func benchCommitAndRelay(b *testing.B, d database, perTx int) {
	app := troupe.New(troupetest.Config(b, troupe.Config{Name: "bench"}))
	app.Service("orders").Publishes(noteTopic)
	ob := newOutbox(b, d, outbox.Options{})
	if _, err := ob.DB().Exec("CREATE TABLE orders (id text PRIMARY KEY, total int)"); err != nil {
		b.Fatal(err)
	}
	outbox.Attach(app, ob)
	troupetest.Start(b, app)
	ctx := app.Context(context.Background())
	insert := "INSERT INTO orders (id, total) VALUES (?, ?)"
	if d.kind == outbox.Postgres {
		insert = "INSERT INTO orders (id, total) VALUES ($1, $2)"
	}
	notes := make([]Note, perTx)
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			tx, err := ob.DB().BeginTx(ctx, nil)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := tx.Exec(insert, strconv.FormatInt(n, 10), n); err != nil {
				b.Error(err)
				tx.Rollback()
				return
			}
			if err := outbox.PublishTx(ctx, tx, noteTopic, notes...); err != nil {
				b.Error(err)
				tx.Rollback()
				return
			}
			if err := tx.Commit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	committed := time.Since(start)
	for {
		p, err := ob.Pending(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	relayed := time.Since(start)
	b.StopTimer()
	events := float64(b.N * perTx)
	b.ReportMetric(events/committed.Seconds(), "committed_events/s")
	b.ReportMetric(events/relayed.Seconds(), "relayed_events/s")
}

// BenchmarkRelayLatency measures the time from a transaction's commit to
// the relay's publish of its event to the embedded broker, one transaction
// at a time: the wake-up path (PostgreSQL NOTIFY, SQLite's in-process
// signal) rather than the poll.
//
//	go test -run '^$' -bench RelayLatency -benchtime 300x ./outbox
func BenchmarkRelayLatency(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) database
	}{{"sqlite", sqliteDB}, {"postgres", postgresDB}} {
		b.Run(db.name, func(b *testing.B) {
			d := db.open(b)
			published := make(chan struct{}, 1)
			app := troupe.New(troupetest.Config(b, troupe.Config{Name: "latency"}))
			app.Service("orders").Publishes(noteTopic)
			app.Use(troupe.Middleware{Name: "signal", Publish: func(next troupe.PublishFunc) troupe.PublishFunc {
				return func(ctx context.Context, msgs []*transport.Message) error {
					err := next(ctx, msgs)
					published <- struct{}{}
					return err
				}
			}})
			ob := newOutbox(b, d, outbox.Options{PollInterval: time.Minute}) // the poll must not help
			outbox.Attach(app, ob)
			troupetest.Start(b, app)
			ctx := app.Context(context.Background())
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := ob.DB().BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := outbox.PublishTx(ctx, tx, noteTopic, Note{N: i}); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				select {
				case <-published:
				case <-time.After(30 * time.Second):
					b.Fatal("the relay did not publish within 30s")
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
