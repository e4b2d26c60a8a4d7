package outbox_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport"
)

// The crash test runs a real process that writes orders and their events
// through the outbox while a consumer with the inbox applies them, and
// kills it with SIGKILL right after the consumer committed one event and
// before the broker heard of it, while the producer and the relay are
// still busy. A second process on the same database and broker directory
// must then relay what was left, get the killed event redelivered and
// skip it, and apply every committed order exactly once.

const crashOrders = 300

// TestCrashChild is the process of TestKillNineDuringRelayAndBeforeAck.
// It does nothing unless started by that test.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("TROUPE_OUTBOX_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestKillNineDuringRelayAndBeforeAck")
	}
	killAt, _ := strconv.Atoi(os.Getenv("TROUPE_OUTBOX_KILL_AT")) // 0: never
	logf, err := os.OpenFile(filepath.Join(dir, "child.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	record := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logf, format+"\n", args...)
	}
	db := openCrashDB(t, dir)
	ob, err := outbox.New(db, outbox.Options{BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	app := troupe.New(troupe.Config{Name: "obcrash", DataDir: filepath.Join(dir, "broker"), HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	app.Service("orders").Publishes(noteTopic)
	outbox.Subscribe(app.Service("ledger"), noteTopic, "apply", ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[Note]) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO effects (n) VALUES ("+placeholder(ob)+")", ev.Data.N)
		return err
	}, troupe.Concurrency(4), troupe.Lease(2*time.Second))
	app.Use(troupe.Middleware{Name: "crash", Handle: func(sub *troupe.Subscription, next troupe.HandleFunc) troupe.HandleFunc {
		return func(ctx context.Context, d *transport.Delivery) error {
			var n Note
			_ = json.Unmarshal(d.Data, &n)
			record("delivered %d %d", n.N, d.Attempt)
			err := next(ctx, d)
			if err == nil && n.N == killAt {
				// The handler's transaction has committed; the ack has not
				// been sent.
				record("killing %d", n.N)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			return err
		}
	}})
	outbox.Attach(app, ob)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TROUPE_OUTBOX_PRODUCE") != "" {
		pctx := app.Context(ctx)
		for i := 1; i <= crashOrders; i++ {
			tx, err := db.BeginTx(pctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("INSERT INTO orders (n) VALUES ("+placeholder(ob)+")", i); err != nil {
				t.Fatal(err)
			}
			if err := outbox.PublishTx(pctx, tx, noteTopic, Note{N: i}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		record("produced %d", crashOrders)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = app.Stop(sctx)
}

func placeholder(ob *outbox.Outbox) string {
	if ob.Dialect() == outbox.Postgres {
		return "$1"
	}
	return "?"
}

// openCrashDB opens the child's database: PostgreSQL when the parent
// passed a DSN, else the SQLite file in dir.
func openCrashDB(t testing.TB, dir string) *sql.DB {
	if dsn := os.Getenv("TROUPE_OUTBOX_PG"); dsn != "" {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db, err := outbox.OpenSQLite(filepath.Join(dir, "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestKillNineDuringRelayAndBeforeAck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	eachDB(t, func(t *testing.T, d database) {
		dir := t.TempDir()
		db := d.open(t)
		var env []string
		if d.kind == outbox.Postgres {
			env = append(env, "TROUPE_OUTBOX_PG="+pgDSNOf(t, db))
		} else {
			db.Close()
			var err error
			if db, err = outbox.OpenSQLite(filepath.Join(dir, "app.db")); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
		}
		for _, q := range []string{"CREATE TABLE orders (n int PRIMARY KEY)", "CREATE TABLE effects (n int NOT NULL)"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		ob, err := outbox.New(db, outbox.Options{}) // the parent only reads its tables
		if err != nil {
			t.Fatal(err)
		}
		start := func(extra ...string) *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), append(append([]string{"TROUPE_OUTBOX_CRASH_DIR=" + dir}, env...), extra...)...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd
		}
		const killAt = 120
		first := start("TROUPE_OUTBOX_PRODUCE=1", "TROUPE_OUTBOX_KILL_AT="+strconv.Itoa(killAt))
		err = first.Wait()
		if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the first process was meant to die by SIGKILL after handling event %d; it ended with %v", killAt, err)
		}
		logPath := filepath.Join(dir, "child.log")
		before := readCrashLog(t, logPath)
		committed := countRows(t, db, "SELECT count(*) FROM orders")
		pending, err := ob.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed after committing event %d: %d orders committed of %d, %d events waiting in the outbox, %d applied",
			killAt, committed, crashOrders, pending, countRows(t, db, "SELECT count(*) FROM effects"))
		if before.produced && pending == 0 {
			t.Fatal("the producer had finished and the outbox was empty at the kill: the relay was not interrupted, the test proves nothing")
		}
		if countRows(t, db, "SELECT count(*) FROM effects WHERE n = "+strconv.Itoa(killAt)) != 1 {
			t.Fatalf("event %d's effect was not committed before the kill", killAt)
		}

		second := start()
		defer func() {
			_ = second.Process.Signal(syscall.SIGTERM)
			_ = second.Wait()
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			applied := countRows(t, db, "SELECT count(DISTINCT n) FROM effects")
			p, err := ob.Pending(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			after := readCrashLog(t, logPath)
			if applied == committed && p == 0 && after.delivered[killAt] >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the restart: %d of %d orders applied, %d events pending, event %d delivered %d times",
					applied, committed, p, killAt, after.delivered[killAt])
			}
			time.Sleep(20 * time.Millisecond)
		}
		rows, err := db.Query("SELECT n, count(*) FROM effects GROUP BY n HAVING count(*) > 1")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n, c int
			if err := rows.Scan(&n, &c); err != nil {
				t.Fatal(err)
			}
			t.Errorf("order %d applied %d times", n, c)
		}
		if n := countRows(t, db, "SELECT count(*) FROM effects e WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.n = e.n)"); n != 0 {
			t.Errorf("%d effects of orders that never committed", n)
		}
		after := readCrashLog(t, logPath)
		redelivered := 0
		for _, c := range after.delivered {
			if c > 1 {
				redelivered++
			}
		}
		t.Logf("after the restart: %d orders applied once each; %d events delivered more than once (event %d %d times), all skipped by the inbox",
			committed, redelivered, killAt, after.delivered[killAt])
	})
}

// pgDSNOf returns a DSN for the test's schema, for the child.
func pgDSNOf(t testing.TB, db *sql.DB) string {
	var schema string
	if err := db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(postgresURL(), "?") {
		sep = "&"
	}
	return postgresURL() + sep + "search_path=" + schema
}

type crashLog struct {
	produced  bool
	delivered map[int]int
}

func readCrashLog(t testing.TB, path string) crashLog {
	t.Helper()
	l := crashLog{delivered: map[int]int{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return l
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "produced":
			l.produced = true
		case "delivered":
			if len(fields) == 3 {
				l.delivered[n]++
			}
		}
	}
	return l
}
