package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/troupetest"
)

func createOrders(t testing.TB, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec("CREATE TABLE orders (id text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

func countRows(t testing.TB, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// A rolled-back transaction publishes nothing; a committed one publishes
// exactly its events, on every database and broker.
func TestCommitPublishesRollbackPublishesNothing(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		eachDB(t, func(t *testing.T, d database) {
			app := newApp(t, b, "")
			ob := newOutbox(t, d, outbox.Options{})
			createOrders(t, ob.DB())
			app.Service("orders").Publishes(noteTopic)
			got := newCounter()
			troupe.Subscribe(app.Service("audit"), noteTopic, "log", func(ctx context.Context, ev troupe.Event[Note]) error {
				got.add(strconv.Itoa(ev.Data.N))
				return nil
			}, troupe.Concurrency(1))
			outbox.Attach(app, ob)
			troupetest.Start(t, app)
			ctx := app.Context(t.Context())

			write := func(order string, ns ...int) *sql.Tx {
				tx, err := ob.DB().BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec("INSERT INTO orders (id) VALUES ('" + order + "')"); err != nil {
					t.Fatal(err)
				}
				var notes []Note
				for _, n := range ns {
					notes = append(notes, Note{N: n})
				}
				if err := outbox.PublishTx(ctx, tx, noteTopic, notes...); err != nil {
					t.Fatal(err)
				}
				return tx
			}
			if err := write("rolled-back", 1, 2, 3, 4, 5).Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := write("committed", 6, 7, 8, 9, 10).Commit(); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, "events 6 to 10", func(m map[string]int, _ int) bool { return len(m) >= 5 })
			waitPending(t, ob, 0)
			// Had the rolled-back events reached the table, their lower ids
			// would have put them on the topic before 6, and the
			// one-at-a-time subscriber would have seen them first.
			m, total := got.snapshot()
			for n := 6; n <= 10; n++ {
				if m[strconv.Itoa(n)] != 1 {
					t.Errorf("event %d handled %d times, want 1", n, m[strconv.Itoa(n)])
				}
			}
			if total != 5 {
				t.Errorf("handled %d events, want the 5 committed ones: %v", total, m)
			}
			if n := countRows(t, ob.DB(), "SELECT count(*) FROM orders"); n != 1 {
				t.Errorf("orders table has %d rows, want the committed one", n)
			}
		})
	})
}

// Two relays (two pools, as two processes would have) on one table
// publish every row exactly once, and never the same row at the same
// time.
func TestTwoRelaysPublishEachRowOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		rec := troupetest.NewRecorder()
		var (
			mu       sync.Mutex
			inFlight = map[string]bool{}
			times    = map[string]int{}
			overlaps atomic.Int64
		)
		watch := troupe.Middleware{Name: "watch", Publish: func(next troupe.PublishFunc) troupe.PublishFunc {
			return func(ctx context.Context, msgs []*transport.Message) error {
				mu.Lock()
				for _, m := range msgs {
					if inFlight[m.ID] {
						overlaps.Add(1)
					}
					inFlight[m.ID] = true
					times[m.ID]++
				}
				mu.Unlock()
				err := next(ctx, msgs)
				mu.Lock()
				for _, m := range msgs {
					delete(inFlight, m.ID)
				}
				mu.Unlock()
				return err
			}
		}}
		var obs []*outbox.Outbox
		var apps []*troupe.App
		for range 2 {
			app := troupe.New(troupetest.Config(t, troupe.Config{Name: "relays", Transport: rec}))
			app.Service("orders").Publishes(noteTopic)
			app.Use(watch)
			ob := newOutbox(t, d, outbox.Options{BatchSize: 16})
			outbox.Attach(app, ob)
			troupetest.Start(t, app)
			obs, apps = append(obs, ob), append(apps, app)
		}
		const writers, perWriter = 4, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				ob, app := obs[w%2], apps[w%2]
				ctx := app.Context(context.Background())
				for i := range perWriter {
					tx, err := ob.DB().BeginTx(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					if err := outbox.PublishTx(ctx, tx, noteTopic, Note{N: w*perWriter + i}); err != nil {
						t.Error(err)
						tx.Rollback()
						return
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		waitPending(t, obs[0], 0)
		msgs := rec.Published()
		seen := map[int]int{}
		for _, m := range msgs {
			var n Note
			if err := m.Decode(&n); err != nil {
				t.Fatal(err)
			}
			seen[n.N]++
		}
		if len(seen) != writers*perWriter {
			t.Errorf("%d distinct events published, want %d", len(seen), writers*perWriter)
		}
		for n, c := range seen {
			if c != 1 {
				t.Errorf("event %d published %d times", n, c)
			}
		}
		if o := overlaps.Load(); o > 0 {
			t.Errorf("%d times a row was being published by both relays at once", o)
		}
		t.Logf("%d events published by two relays, each once", len(msgs))
	})
}

// Events that share an ordering key reach the broker in the order their
// transactions committed, even when a later transaction wrote its event
// first (PostgreSQL's identity order is not commit order).
func TestOrderingKeyFollowsCommitOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		rec := troupetest.NewRecorder()
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "ordering", Transport: rec}))
		app.Service("orders").Publishes(noteTopic)
		ob := newOutbox(t, d, outbox.Options{})
		if _, err := ob.DB().Exec("CREATE TABLE seq (k text PRIMARY KEY, n int NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		keys := []string{"a", "b", "c"}
		for _, k := range keys {
			if _, err := ob.DB().Exec("INSERT INTO seq (k, n) VALUES ('" + k + "', 0)"); err != nil {
				t.Fatal(err)
			}
		}
		outbox.Attach(app, ob)
		troupetest.Start(t, app)

		// Each transaction writes its event first, then takes its key's
		// next number: the numbers are the commit order of the key.
		var (
			mu    sync.Mutex
			order = map[string]int{} // token → position in its key's commit order
		)
		const writers, perWriter = 6, 25
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for i := range perWriter {
					k := keys[r.IntN(len(keys))]
					token := fmt.Sprintf("%d-%d", w, i)
					ctx := outbox.WithOrderingKey(app.Context(context.Background()), k)
					tx, err := ob.DB().BeginTx(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					if err := outbox.PublishTx(ctx, tx, noteTopic, Note{Key: k + "/" + token}); err != nil {
						t.Error(err)
						tx.Rollback()
						return
					}
					if d.kind == outbox.Postgres {
						// Widen the window in which another writer of the key
						// could commit first.
						if _, err := tx.Exec("SELECT pg_sleep(0.001 * $1)", r.IntN(3)); err != nil {
							t.Error(err)
						}
					}
					var n int
					if err := tx.QueryRow("UPDATE seq SET n = n + 1 WHERE k = '" + k + "' RETURNING n").Scan(&n); err != nil {
						t.Error(err)
						tx.Rollback()
						return
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					order[k+"/"+token] = n
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		waitPending(t, ob, 0)
		last := map[string]int{}
		count := 0
		for _, m := range rec.Published() {
			var n Note
			if err := m.Decode(&n); err != nil {
				t.Fatal(err)
			}
			k := n.Key[:1]
			pos := order[n.Key]
			if pos <= last[k] {
				t.Errorf("key %s: event committed %d-th published after the %d-th", k, pos, last[k])
			}
			last[k] = pos
			count++
		}
		if count != writers*perWriter {
			t.Errorf("published %d events, want %d", count, writers*perWriter)
		}
	})
}

// On PostgreSQL a commit through another pool (another process) wakes the
// relay by NOTIFY: with a poll of ten minutes, the event can only arrive
// within the wait through it.
func TestNotifyWakesTheRelayOfAnotherProcess(t *testing.T) {
	d := postgresDB(t)
	rec := troupetest.NewRecorder()
	published := make(chan struct{}, 16)
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "notify", Transport: rec}))
	app.Service("orders").Publishes(noteTopic)
	app.Use(troupe.Middleware{Name: "signal", Publish: func(next troupe.PublishFunc) troupe.PublishFunc {
		return func(ctx context.Context, msgs []*transport.Message) error {
			err := next(ctx, msgs)
			published <- struct{}{}
			return err
		}
	}})
	relay := newOutbox(t, d, outbox.Options{PollInterval: 10 * time.Minute})
	outbox.Attach(app, relay)
	troupetest.Start(t, app)
	// Writes through another pool: only NOTIFY tells the relay of them
	// before its poll.
	writer := newOutbox(t, d, outbox.Options{}) // another pool, no relay
	ctx := outbox.WithOutbox(app.Context(t.Context()), writer)
	for i := range 3 {
		tx, err := writer.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.PublishTx(ctx, tx, noteTopic, Note{N: i}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-published:
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d was not relayed within 30s: NOTIFY did not wake the relay", i)
		}
	}
}
