package ops_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/ops"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

type paymentSucceeded struct {
	OrderID string `json:"order_id"`
}

var (
	topicOrderPlaced = troupe.NewTopic[orderPlaced]("order_placed", 1)
	topicPaid        = troupe.NewTopic[paymentSucceeded]("payment_succeeded", 1)
)

// shop declares a two-step flow: payment.charge fails its first attempt,
// then publishes payment_succeeded; shipping.ship refuses every order for
// good until fixed is set, then records it in shipped.
func shop(cfg troupe.Config, fixed *atomic.Bool, shipped chan<- string) *troupe.App {
	app := troupe.New(cfg)
	app.Service("orders").Publishes(topicOrderPlaced)
	payment := app.Service("payment").Publishes(topicPaid)
	troupe.Subscribe(payment, topicOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		if ev.Attempt == 1 {
			return errors.New("card network timed out")
		}
		return troupe.Publish(ctx, topicPaid, paymentSucceeded(ev.Data))
	}, troupe.Emits(topicPaid), troupe.MaxAttempts(3), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	troupe.Subscribe(app.Service("shipping"), topicPaid, "ship", func(ctx context.Context, ev troupe.Event[paymentSucceeded]) error {
		if fixed == nil || !fixed.Load() {
			return troupe.Permanent(errors.New("no address for order " + ev.Data.OrderID))
		}
		shipped <- ev.Data.OrderID
		return nil
	})
	return app
}

// site is a running app on one broker, and how an operator reaches it.
type site struct {
	name     string
	broker   string // --broker for the commands
	app      *troupe.App
	fixed    atomic.Bool
	shipped  chan string
	declared func() *troupe.App // a fresh declaration, as a command's binary has
}

// onBrokers runs f against an app running with the journal on the
// embedded broker (with a listener, reached over nats://), the local NATS
// server and the local RabbitMQ; absent external brokers skip, except in
// CI.
func onBrokers(t *testing.T, f func(t *testing.T, s *site)) {
	onBrokersOf(t, []string{"embedded", "nats", "rabbitmq"}, f)
}

// onBrokersOf is onBrokers on some of them.
func onBrokersOf(t *testing.T, brokers []string, f func(t *testing.T, s *site)) {
	for _, b := range brokers {
		t.Run(b, func(t *testing.T) {
			s := &site{name: uniqueName("ops"), shipped: make(chan string, 16)}
			cfg := troupe.Config{Name: s.name}
			switch b {
			case "embedded":
				port := freePort(t)
				cfg.Broker = "embedded:?listen=127.0.0.1:" + strconv.Itoa(port)
				s.broker = "nats://127.0.0.1:" + strconv.Itoa(port)
			case "nats":
				s.broker = "nats://127.0.0.1:4222"
				cfg.Broker = s.broker
				if err := cleanNATS(t, s.name); err != nil {
					skip(t, b, err)
				}
			case "rabbitmq":
				s.broker = "amqp://guest:guest@127.0.0.1:5672/"
				cfg.Broker = s.broker
				if err := cleanRabbit(t, s.name); err != nil {
					skip(t, b, err)
				}
			}
			s.app = shop(troupetest.Config(t, cfg), &s.fixed, s.shipped)
			journal.Install(s.app)
			troupetest.Start(t, s.app)
			s.declared = func() *troupe.App {
				return shop(troupetest.Config(t, troupe.Config{Name: s.name}), nil, nil)
			}
			f(t, s)
		})
	}
}

func skip(t *testing.T, broker string, err error) {
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (CI needs it)", broker, err)
	}
	t.Skipf("no %s broker (%v); start it to run this test", broker, err)
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func cleanNATS(t *testing.T, ns string) error {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		return err
	}
	t.Cleanup(func() {
		defer nc.Close()
		_ = natsjs.DeleteNamespace(context.Background(), nc, ns)
	})
	return nil
}

func cleanRabbit(t *testing.T, ns string) error {
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		return err
	}
	t.Cleanup(func() {
		defer conn.Close()
		queues := []string{ns + ".journal"}
		for _, sub := range []string{"payment.charge", "shipping.ship"} {
			q := ns + "." + sub
			queues = append(queues, q, q+".dlq")
			for _, d := range rabbitmq.DefaultRetryDelays {
				queues = append(queues, q+".retry."+strconv.FormatInt(d.Milliseconds(), 10)+"ms")
			}
		}
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete("troupe."+ns, false, false)
			_ = ch.Close()
		}
	})
	return nil
}

// run runs a command of a freshly declared app against the site, as
// "<app> name args... --broker URL" would, and returns its output.
func (s *site) run(t *testing.T, cmd troupe.CommandFunc, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), troupetest.DefaultTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	err = cmd(ctx, s.declared(), append(args, "--broker", s.broker), &out, &errb)
	return out.String(), errb.String(), err
}

// placeOrders publishes orders o1..on, each its own transaction, and waits
// until shipping.ship dead-lettered all of them.
func (s *site) placeOrders(t *testing.T, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		ctx := troupe.WithCorrelationID(s.app.Context(context.Background()), fmt.Sprintf("%s-o%d", s.name, i))
		if err := troupe.Publish(ctx, topicOrderPlaced, orderPlaced{OrderID: fmt.Sprintf("o%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	troupetest.DeadLetters(t, s.app, "shipping.ship", n)
}

func isUsage(err error) bool { return errors.Is(err, troupe.ErrUsage) }

func TestDLQCommands(t *testing.T) {
	onBrokers(t, func(t *testing.T, s *site) {
		s.placeOrders(t, 3)
		dls, err := s.app.DeadLetters(context.Background(), "shipping.ship", 0)
		if err != nil || len(dls) != 3 {
			t.Fatalf("dead letters: %d, %v", len(dls), err)
		}

		out, _, err := s.run(t, ops.DLQ, "list")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^shipping\.ship\s+3$`).MatchString(out) || !regexp.MustCompile(`(?m)^payment\.charge\s+0$`).MatchString(out) {
			t.Errorf("dlq list:\n%s", out)
		}
		out, _, err = s.run(t, ops.DLQ, "list", "shipping.ship")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dls {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(d.ID) + `\s+payment_succeeded\.v1\s+permanent\s+1\s`).MatchString(out) {
				t.Errorf("dlq list shipping.ship lacks %s:\n%s", d.ID, out)
			}
		}
		out, _, err = s.run(t, ops.DLQ, "show", "shipping.ship", dls[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"reason         permanent", "no address for order o", `"order_id": "o`, "correlation    " + dls[0].Message.CorrelationID} {
			if !strings.Contains(out, want) {
				t.Errorf("dlq show lacks %q:\n%s", want, out)
			}
		}

		// Mistakes: each a one-line usage error or an error with the fix.
		for _, args := range [][]string{{}, {"lsit"}, {"list", "nope.nope"}, {"show", "shipping.ship"}, {"replay", "shipping.ship"},
			{"replay", "shipping.ship", "x", "--all"}, {"discard", "shipping.ship", "a", "b"}, {"list", "--bogus"}} {
			_, stderr, err := s.run(t, ops.DLQ, args...)
			if !isUsage(err) || stderr == "" {
				t.Errorf("dlq %v: %v, stderr %q; want a usage error", args, err, stderr)
			}
		}
		_, stderr, err := s.run(t, ops.DLQ, "list", "nope.nope")
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "shipping.ship") {
			t.Errorf("unknown subscription: %q", stderr)
		}
		for _, op := range []string{"replay", "discard", "show"} {
			_, _, err := s.run(t, ops.DLQ, op, "shipping.ship", "no-such-id")
			if !errors.Is(err, transport.ErrNotFound) || !strings.Contains(err.Error(), "dlq list shipping.ship") {
				t.Errorf("dlq %s of an unknown id: %v", op, err)
			}
		}

		out, _, err = s.run(t, ops.DLQ, "discard", "shipping.ship", dls[0].ID)
		if err != nil || !strings.Contains(out, "discarded "+dls[0].ID) {
			t.Fatalf("discard: %q, %v", out, err)
		}
		s.fixed.Store(true)
		out, _, err = s.run(t, ops.DLQ, "replay", "shipping.ship", dls[1].ID)
		if err != nil || !strings.Contains(out, "replayed "+dls[1].ID) {
			t.Fatalf("replay: %q, %v", out, err)
		}
		waitShipped(t, s, 1)
		out, stderr, err = s.run(t, ops.DLQ, "replay", "shipping.ship", "--all")
		if err != nil || !strings.Contains(out, "replayed 1 dead letters") {
			t.Fatalf("replay --all: %q, %v", out, err)
		}
		if stderr != "" {
			t.Errorf("progress drawn on a non-terminal: %q", stderr)
		}
		waitShipped(t, s, 1)
		if dls, err := s.app.DeadLetters(context.Background(), "shipping.ship", 0); err != nil || len(dls) != 0 {
			t.Errorf("after replay --all: %d dead letters, %v", len(dls), err)
		}
	})
}

func waitShipped(t *testing.T, s *site, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.shipped:
		case <-time.After(troupetest.DefaultTimeout):
			t.Fatal("the replayed event was not handled")
		}
	}
}

func TestTraceCommand(t *testing.T) {
	onBrokers(t, func(t *testing.T, s *site) {
		s.placeOrders(t, 1)
		id := s.name + "-o1"
		var out string
		deadline := time.Now().Add(troupetest.DefaultTimeout)
		for {
			var err error
			out, _, err = s.run(t, ops.Trace, id)
			if err == nil && strings.Count(out, "\n") >= 6 {
				break
			}
			if err != nil && !errors.Is(err, journal.ErrNotFound) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("trace after %s: %q, %v", troupetest.DefaultTimeout, out, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !regexp.MustCompile(`^correlation ` + id + `: 5 entries over \S+$`).MatchString(lines[0]) {
			t.Errorf("header %q", lines[0])
		}
		// Each line: the offset, then what happened indented by its depth
		// (the column starts where the first entry's text does), then the
		// outcome, the duration and the error.
		want := []struct {
			what  string
			depth int
			rest  string
		}{
			{"order_placed.v1 published by (outside services)", 0, `published\s+\S+`},
			{"payment.charge attempt 1", 1, `retried\s+\S+\s+card network timed out`},
			{"payment.charge attempt 2", 1, `handled\s+\S+`},
			{"payment_succeeded.v1 published by payment", 2, `published\s+\S+`},
			{"shipping.ship attempt 1", 3, `dead-lettered\s+\S+\s+permanent: no address for order o1`},
		}
		if len(lines) != len(want)+1 {
			t.Fatalf("trace:\n%s", out)
		}
		// Columns count characters: durations have a µ.
		column := func(l, s string) int { return utf8.RuneCountInString(l[:max(strings.Index(l, s), 0)]) }
		col := column(lines[1], want[0].what)
		for i, w := range want {
			l := lines[i+1]
			at := max(strings.Index(l, w.what), 0)
			if !strings.HasPrefix(l, "+") || column(l, w.what) != col+2*w.depth ||
				!regexp.MustCompile(`^`+regexp.QuoteMeta(w.what)+`\s+`+w.rest+`\s*$`).MatchString(l[at:]) {
				t.Errorf("line %d %q: want %q at depth %d, then %s\n%s", i+1, l, w.what, w.depth, w.rest, out)
			}
		}

		out, _, err := s.run(t, ops.Trace, id, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var depths []int
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e journal.Entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("--json line %q: %v", l, err)
			}
			depths = append(depths, e.Depth)
		}
		if fmt.Sprint(depths) != "[0 1 1 2 3]" {
			t.Errorf("--json depths %v", depths)
		}

		if _, _, err := s.run(t, ops.Trace, "no-such-id"); !errors.Is(err, journal.ErrNotFound) || !strings.Contains(err.Error(), "no-such-id") {
			t.Errorf("trace of an unknown id: %v", err)
		}
		if _, stderr, err := s.run(t, ops.Trace); !isUsage(err) || !strings.Contains(stderr, "trace <correlation-id>") {
			t.Errorf("trace without an id: %v, %q", err, stderr)
		}
	})
}

// lines collects what a command writes, line by line, for a test to wait on.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	seen chan string
}

func newLines() *lines { return &lines{seen: make(chan string, 64)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // keep the unfinished line
			return len(p), nil
		}
		l.seen <- strings.TrimSuffix(line, "\n")
	}
}

func (l *lines) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-l.seen:
		return s
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("no line written")
		return ""
	}
}

func TestTailCommand(t *testing.T) {
	onBrokers(t, func(t *testing.T, s *site) {
		for _, asJSON := range []bool{false, true} {
			ctx, cancel := context.WithCancel(context.Background())
			stdout, stderr := newLines(), newLines()
			done := make(chan error, 1)
			args := []string{"--topic", "order_placed", "--broker", s.broker}
			if asJSON {
				args = append(args, "--json")
			}
			go func() { done <- ops.Tail(ctx, s.declared(), args, stdout, stderr) }()
			if l := stderr.next(t); !strings.HasPrefix(l, "tailing order_placed of "+s.name) {
				t.Fatalf("tail said %q", l)
			}
			corr := fmt.Sprintf("tail-%v", asJSON)
			pctx := troupe.WithCorrelationID(s.app.Context(context.Background()), corr)
			if err := troupe.Publish(pctx, topicOrderPlaced, orderPlaced{OrderID: "t1"}); err != nil {
				t.Fatal(err)
			}
			l := stdout.next(t)
			if asJSON {
				var ev struct {
					Type, Correlation string
					Data              orderPlaced
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != "order_placed.v1" || ev.Correlation != corr || ev.Data.OrderID != "t1" {
					t.Errorf("tail --json printed %q (%v)", l, err)
				}
			} else if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} order_placed\.v1 from ` + s.name + ` \(outside services\) id=\S+ correlation=` + corr + `$`).MatchString(l) {
				t.Errorf("tail printed %q", l)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("tail after interrupt: %v", err)
				}
			case <-time.After(troupetest.DefaultTimeout):
				t.Fatal("tail did not stop")
			}
		}
		var errb bytes.Buffer
		err := ops.Tail(context.Background(), s.declared(), []string{"--topic", "nope"}, &bytes.Buffer{}, &errb)
		if !isUsage(err) || !strings.Contains(errb.String(), "order_placed, payment_succeeded") {
			t.Errorf("tail of an unknown topic: %v, %q", err, errb.String())
		}
	})
}

// The commands are registered on every app binary importing ops; bad
// arguments come back as usage errors, and an unreachable broker says how
// to pass one.
func TestRegisteredCommands(t *testing.T) {
	app := shop(troupetest.Config(t, troupe.Config{Name: "opsreg"}), nil, nil)
	var stderr bytes.Buffer
	err := app.RunCommand(context.Background(), []string{"dlq", "list", "nope.nope"}, &stderr)
	if !isUsage(err) || !strings.Contains(stderr.String(), `no subscription "nope.nope"`) {
		t.Errorf("dlq list nope.nope: %v, %q", err, stderr.String())
	}
	stderr.Reset()
	err = shop(troupetest.Config(t, troupe.Config{Name: "opsreg"}), nil, nil).RunCommand(context.Background(), []string{"trace", "x", "--broker", "nats://127.0.0.1:1"}, &stderr)
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "--broker") {
		t.Errorf("trace on an unreachable broker: %v", err)
	}
}
