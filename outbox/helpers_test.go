package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

// The events the tests publish.
type Note struct {
	N   int    `json:"n"`
	Key string `json:"key,omitempty"`
}

type Order struct {
	ID string `json:"id"`
}

var (
	noteTopic   = troupe.NewTopic[Note]("outbox_note", 1)
	orderPlaced = troupe.NewTopic[Order]("outbox_order", 1)
)

// database is one isolated database of a test: open returns a new pool on
// it each time, so a test can run two outboxes as two processes would.
type database struct {
	kind outbox.Dialect
	open func(t testing.TB) *sql.DB
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// need skips the test with msg, or fails it in CI, where every service
// must be there.
func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it)", msg)
	}
	t.Skip(msg)
}

// sqliteDB is a SQLite file in the test's temporary directory.
func sqliteDB(t testing.TB) database {
	path := filepath.Join(t.TempDir(), "app.db")
	return database{kind: outbox.SQLite, open: func(t testing.TB) *sql.DB {
		db, err := outbox.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}}
}

// postgresURL is the PostgreSQL the tests use: TROUPE_TEST_POSTGRES,
// default the local server's database "test" as user postgres.
func postgresURL() string {
	if u := os.Getenv("TROUPE_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// postgresDB is a schema of its own in the test database, dropped when the
// test ends; its pools have it as their search_path.
func postgresDB(t testing.TB) database {
	admin, err := sql.Open("pgx", postgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		need(t, fmt.Sprintf("no PostgreSQL at %s (%v); start it or set TROUPE_TEST_POSTGRES", redact(postgresURL()), err))
	}
	schema := "obt_" + randHex(6)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Logf("cleanup: drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	dsn := u.String()
	return database{kind: outbox.Postgres, open: func(t testing.TB) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		// Registered after the schema's cleanup, so it runs first.
		t.Cleanup(func() { db.Close() })
		return db
	}}
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// eachDB runs f against SQLite and PostgreSQL.
func eachDB(t *testing.T, f func(t *testing.T, d database)) {
	t.Run("sqlite", func(t *testing.T) { f(t, sqliteDB(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, postgresDB(t)) })
}

// amqpURL is the RabbitMQ the tests use.
func amqpURL() string {
	if u := os.Getenv("TROUPE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// broker names a transport for appConfig: "embedded" or "rabbitmq".
type broker string

// eachBroker runs f on the embedded broker and on RabbitMQ.
func eachBroker(t *testing.T, f func(t *testing.T, b broker)) {
	t.Run("embedded", func(t *testing.T) { f(t, "embedded") })
	t.Run("rabbitmq", func(t *testing.T) {
		needRabbit(t)
		f(t, "rabbitmq")
	})
}

// needRabbit skips the test when RabbitMQ is not running, except in CI.
func needRabbit(t testing.TB) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		need(t, fmt.Sprintf("no RabbitMQ at %s (%v); start rabbitmq-server or set TROUPE_TEST_AMQP", redact(amqpURL()), err))
	}
	conn.Close()
}

// newApp returns an app with a unique name on broker b, with test
// defaults; on RabbitMQ its queues and exchange are deleted when the test
// ends. dataDir, when not empty, is the embedded broker's directory.
func newApp(t testing.TB, b broker, dataDir string) *troupe.App {
	name := "obt-" + randHex(4)
	cfg := troupe.Config{Name: name, DataDir: dataDir}
	if b == "rabbitmq" {
		cfg.Broker = amqpURL()
	}
	app := troupe.New(troupetest.Config(t, cfg))
	if b == "rabbitmq" {
		// Registered before troupetest.Start's stop, so it runs after it.
		t.Cleanup(func() { deleteRabbitNamespace(t, app) })
	}
	return app
}

func deleteRabbitNamespace(t testing.TB, app *troupe.App) {
	var subs []string
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			subs = append(subs, sub.String())
		}
	}
	deleteRabbitQueues(t, app.Name(), subs)
}

// deleteRabbitQueues deletes the queues of subscriptions subs
// ("service.name") of namespace ns, and its exchange.
func deleteRabbitQueues(t testing.TB, ns string, subs []string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, sub := range subs {
		q := ns + "." + sub
		queues := []string{q, q + ".dlq"}
		for _, d := range rabbitmq.DefaultRetryDelays {
			queues = append(queues, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
		}
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: delete queue %s: %v", q, err)
				return
			}
		}
	}
	if err := ch.ExchangeDelete("troupe."+ns, false, false); err != nil {
		t.Logf("cleanup: delete exchange: %v", err)
	}
}

// newOutbox opens an outbox on d with a fresh pool.
func newOutbox(t testing.TB, d database, opts outbox.Options) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.New(d.open(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

// counter counts handled events by a key, safely.
type counter struct {
	mu      sync.Mutex
	n       map[string]int
	total   int
	changed chan struct{}
}

func newCounter() *counter { return &counter{n: map[string]int{}, changed: make(chan struct{})} }

func (c *counter) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[k]++
	c.total++
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *counter) snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.n))
	for k, v := range c.n {
		m[k] = v
	}
	return m, c.total
}

// waitFor waits until cond holds on the counter, up to 30s.
func (c *counter) waitFor(t testing.TB, what string, cond func(m map[string]int, total int) bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		m, total := c.snapshot()
		if cond(m, total) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited 30s for %s; have %d distinct, %d in all", what, len(m), total)
		}
	}
}

// waitPending waits until the outbox table holds no event to relay.
func waitPending(t testing.TB, ob *outbox.Outbox, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := ob.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %d events pending in the outbox; %d are", want, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually polls cond until it holds, for up to 30s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
