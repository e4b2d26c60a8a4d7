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
	killAt, _ := strconv.Atoi(os.Getenv("TROUPE_OUTBOX_KILL_AT"))           // 0: never
	killRelayed, _ := strconv.Atoi(os.Getenv("TROUPE_OUTBOX_KILL_RELAYED")) // 0: never
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
	// The app's name and broker: the embedded one in dir by default.
	name, brokerURL := os.Getenv("TROUPE_OUTBOX_APP"), os.Getenv("TROUPE_OUTBOX_BROKER")
	app := troupe.New(troupe.Config{Name: name, Broker: brokerURL, DataDir: filepath.Join(dir, "broker"), HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	app.Service("orders").Publishes(noteTopic)
	outbox.Subscribe(app.Service("ledger"), noteTopic, "apply", ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[Note]) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO effects (n) VALUES ("+placeholder(ob)+")", ev.Data.N)
		return err
	}, troupe.Concurrency(4), troupe.Lease(2*time.Second))
	app.Use(troupe.Middleware{Name: "crash", Publish: func(next troupe.PublishFunc) troupe.PublishFunc {
		return func(ctx context.Context, msgs []*transport.Message) error {
			err := next(ctx, msgs)
			if err != nil {
				return err
			}
			kill := false
			for _, m := range msgs {
				var n Note
				_ = json.Unmarshal(m.Data, &n)
				record("relayed %d", n.N)
				kill = kill || n.N == killRelayed
			}
			if kill {
				// The broker has confirmed the batch; the relay has not
				// deleted its rows.
				record("killing relay")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			return nil
		}
	}, Handle: func(sub *troupe.Subscription, next troupe.HandleFunc) troupe.HandleFunc {
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
		// A failed transaction leaves no order and no event, which the
		// parent accepts (it checks the committed orders); only a run of
		// failures stops the producer.
		failures := 0
		for i := 1; i <= crashOrders; i++ {
			err := func() error {
				tx, err := db.BeginTx(pctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.Exec("INSERT INTO orders (n) VALUES ("+placeholder(ob)+")", i); err != nil {
					return err
				}
				if err := outbox.PublishTx(pctx, tx, noteTopic, Note{N: i}); err != nil {
					return err
				}
				return tx.Commit()
			}()
			if err != nil {
				record("failed %d %v", i, err)
				if failures++; failures > 10 {
					t.Fatal(err)
				}
				continue
			}
			failures = 0
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
	const victim = 120
	for _, sc := range []struct {
		name string
		env  string
		// killed checks the state the kill left, and says what it was.
		killed func(t *testing.T, db *sql.DB, l crashLog) string
		// recovered tells whether the restarted process redid the victim's
		// interrupted step.
		recovered func(l crashLog) bool
	}{
		{
			name: "between-commit-and-ack",
			env:  "TROUPE_OUTBOX_KILL_AT=" + strconv.Itoa(victim),
			killed: func(t *testing.T, db *sql.DB, l crashLog) string {
				if countRows(t, db, "SELECT count(*) FROM effects WHERE n = "+strconv.Itoa(victim)) != 1 {
					t.Fatalf("event %d's effect was not committed before the kill", victim)
				}
				return fmt.Sprintf("killed after the inbox committed event %d, before its ack", victim)
			},
			recovered: func(l crashLog) bool { return l.delivered[victim] >= 2 },
		},
		{
			name: "between-publish-and-delete",
			env:  "TROUPE_OUTBOX_KILL_RELAYED=" + strconv.Itoa(victim),
			killed: func(t *testing.T, db *sql.DB, l crashLog) string {
				if l.relayed[victim] != 1 {
					t.Fatalf("event %d was relayed %d times before the kill, want 1", victim, l.relayed[victim])
				}
				return fmt.Sprintf("killed after the broker confirmed the relay's batch with event %d, before the relay deleted it", victim)
			},
			// The batch's rows survived and were published again.
			recovered: func(l crashLog) bool { return l.relayed[victim] >= 2 },
		},
	} {
		t.Run(sc.name, func(t *testing.T) {
			eachBroker(t, func(t *testing.T, b broker) {
				eachDB(t, func(t *testing.T, d database) {
					crashAndRecover(t, b, d, sc.env, sc.killed, sc.recovered)
				})
			})
		})
	}
}

func crashAndRecover(t *testing.T, b broker, d database, killEnv string, killed func(*testing.T, *sql.DB, crashLog) string, recovered func(crashLog) bool) {
	dir := t.TempDir()
	db := d.open(t)
	name := "obcrash-" + randHex(4)
	env := []string{"TROUPE_OUTBOX_APP=" + name}
	if b == "rabbitmq" {
		env = append(env, "TROUPE_OUTBOX_BROKER="+amqpURL())
		t.Cleanup(func() { deleteRabbitQueues(t, name, []string{"ledger.apply"}) })
	} else {
		env = append(env, "TROUPE_OUTBOX_BROKER=embedded:")
	}
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
		out, err := os.OpenFile(filepath.Join(dir, "child.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "child.out"))
			lines := strings.Split(string(b), "\n")
			t.Logf("the child processes' output ends with:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	first := start("TROUPE_OUTBOX_PRODUCE=1", killEnv)
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute):
		_ = first.Process.Kill()
		<-exited
		t.Fatalf("the first process did not reach its kill point (%s) within 2 minutes", killEnv)
	}
	if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first process was meant to die by SIGKILL (%s); it ended with %v", killEnv, err)
	}
	logPath := filepath.Join(dir, "child.log")
	before := readCrashLog(t, logPath)
	what := killed(t, db, before)
	committed := countRows(t, db, "SELECT count(*) FROM orders")
	pending, err := ob.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d orders committed of %d, %d events waiting in the outbox, %d applied",
		what, committed, crashOrders, pending, countRows(t, db, "SELECT count(*) FROM effects"))
	if before.produced && pending == 0 {
		t.Log("the producer had finished and the relay had caught up by the kill")
	}

	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// Counted again each time: a COMMIT the killed process had sent may
		// complete on the server after the count above.
		committed = countRows(t, db, "SELECT count(*) FROM orders")
		applied := countRows(t, db, "SELECT count(DISTINCT n) FROM effects")
		p, err := ob.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		after := readCrashLog(t, logPath)
		if applied == committed && p == 0 && recovered(after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d of %d orders applied, %d events pending, victim recovered: %v",
				applied, committed, p, recovered(after))
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
	redelivered, republished := 0, 0
	for _, c := range after.delivered {
		if c > 1 {
			redelivered++
		}
	}
	for _, c := range after.relayed {
		if c > 1 {
			republished++
		}
	}
	t.Logf("after the restart: %d orders applied once each; %d events published more than once, %d delivered more than once, all skipped by the inbox",
		committed, republished, redelivered)
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
	delivered map[int]int // by order: deliveries to the consumer
	relayed   map[int]int // by order: publishes confirmed to the relay
}

func readCrashLog(t testing.TB, path string) crashLog {
	t.Helper()
	l := crashLog{delivered: map[int]int{}, relayed: map[int]int{}}
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
		case "relayed":
			l.relayed[n]++
		}
	}
	return l
}
