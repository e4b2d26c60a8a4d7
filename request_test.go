package troupe_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

type registration struct {
	Email string `json:"email"`
}

type registered struct {
	UserID string `json:"user_id"`
}

type registrationFailed struct {
	Reason string `json:"reason"`
}

var (
	testRegister   = troupe.NewTopic[registration]("registration_requested", 1)
	testRegistered = troupe.NewTopic[registered]("user_registered", 1)
	testRegFailed  = troupe.NewTopic[registrationFailed]("user_registration_failed", 1)
)

// registrationApp declares an api service that publishes requests and a
// users service that answers them: emails with "@" register, others fail,
// and "silent@" ones get no answer.
func registrationApp(cfg troupe.Config) *troupe.App {
	app := troupe.New(cfg)
	app.Service("api").Publishes(testRegister)
	users := app.Service("users").Publishes(testRegistered, testRegFailed)
	troupe.Subscribe(users, testRegister, "register", func(ctx context.Context, ev troupe.Event[registration]) error {
		switch {
		case strings.HasPrefix(ev.Data.Email, "silent@"):
			return nil
		case strings.Contains(ev.Data.Email, "@"):
			return troupe.Publish(ctx, testRegistered, registered{UserID: "u-" + ev.Data.Email})
		}
		return troupe.Publish(ctx, testRegFailed, registrationFailed{Reason: "no @ in " + ev.Data.Email})
	}, troupe.Emits(testRegistered, testRegFailed))
	return app
}

func request(ctx context.Context, app *troupe.App, email string, timeout time.Duration) (troupe.Reply, error) {
	ctx, cancel := context.WithTimeout(app.Context(ctx), timeout)
	defer cancel()
	return troupe.Request(ctx, testRegister, registration{Email: email}, testRegistered, testRegFailed)
}

// checkReplies runs the request/reply cases against api, whose answers come
// from a process running the users service (api itself or another app).
func checkReplies(t *testing.T, api *troupe.App) {
	t.Helper()
	ctx := context.Background()
	r, err := request(ctx, api, "ada@example.com", troupetest.DefaultTimeout)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if !r.Is(testRegistered) || r.Is(testRegFailed) {
		t.Fatalf("reply %s, want user_registered", r.Type)
	}
	u, err := troupe.ReplyAs(r, testRegistered)
	if err != nil || u.UserID != "u-ada@example.com" {
		t.Errorf("ReplyAs = %+v, %v", u, err)
	}
	if _, err := troupe.ReplyAs(r, testRegFailed); err == nil {
		t.Error("ReplyAs with the other outcome topic succeeded")
	}
	if r.CausationID == "" || r.CorrelationID == "" {
		t.Errorf("reply envelope %+v lacks causation or correlation", r.Envelope)
	}

	r, err = request(ctx, api, "nobody", troupetest.DefaultTimeout)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	f, err := troupe.ReplyAs(r, testRegFailed)
	if err != nil || f.Reason != "no @ in nobody" {
		t.Errorf("failure reply %s: %+v, %v", r.Type, f, err)
	}

	// Concurrent requests each get their own transaction's outcome.
	type res struct {
		email, user string
		err         error
	}
	out := make(chan res, 20)
	for i := range 20 {
		email := string(rune('a'+i)) + "@x"
		go func() {
			r, err := request(ctx, api, email, troupetest.DefaultTimeout)
			if err != nil {
				out <- res{email: email, err: err}
				return
			}
			u, err := troupe.ReplyAs(r, testRegistered)
			out <- res{email, u.UserID, err}
		}()
	}
	for range 20 {
		r := <-out
		if r.err != nil || r.user != "u-"+r.email {
			t.Errorf("request for %s: user %q, %v", r.email, r.user, r.err)
		}
	}

	start := time.Now()
	_, err = request(ctx, api, "silent@example.com", 300*time.Millisecond)
	if !errors.Is(err, troupe.ErrRequestTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "correlation id") {
		t.Errorf("request without an outcome: %v, want ErrRequestTimeout naming the correlation id", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("timed-out request took %s", took)
	}
}

func TestRequestWaitsForTheOutcome(t *testing.T) {
	app := registrationApp(troupetest.Config(t, troupe.Config{Name: "request"}))
	troupetest.Start(t, app)
	checkReplies(t, app)
}

func TestRequestRefusesBeforePublishing(t *testing.T) {
	rec := troupetest.NewRecorder()
	app := registrationApp(troupetest.Config(t, troupe.Config{Name: "request", Transport: rec}))
	troupetest.Start(t, app)
	ctx := app.Context(context.Background())
	undeclared := troupe.NewTopic[registered]("user_welcomed", 1)
	if _, err := troupe.Request(ctx, testRegister, registration{Email: "a@b"}, undeclared); !errors.Is(err, troupe.ErrUndeclaredTopic) {
		t.Errorf("undeclared outcome: %v", err)
	}
	if _, err := troupe.Request(ctx, testRegister, registration{Email: "a@b"}); err == nil || !strings.Contains(err.Error(), "at least one outcome") {
		t.Errorf("no outcome: %v", err)
	}
	if _, err := troupe.Request(ctx, testRegister, registration{Email: "a@b"}, testRegistered); !errors.Is(err, troupe.ErrNoTap) {
		t.Errorf("transport without taps: %v", err)
	}
	if _, err := troupe.Request(context.Background(), testRegister, registration{Email: "a@b"}, testRegistered); !errors.Is(err, troupe.ErrNoApp) {
		t.Errorf("no app: %v", err)
	}
	if n := len(rec.Published()); n != 0 {
		t.Errorf("%d events published by refused requests", n)
	}
}

// TestRequestAcrossProcesses runs the api and the users service as two apps
// (as two processes would) on each external broker: the outcome reaches the
// requesting app through the broker.
func TestRequestAcrossProcesses(t *testing.T) {
	for _, b := range []struct {
		name, url string
		cleanup   func(t *testing.T, ns string) error
	}{
		{"rabbitmq", "amqp://guest:guest@127.0.0.1:5672/", func(t *testing.T, ns string) error {
			conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
			if err == nil {
				t.Cleanup(func() { deleteRabbitNamespace(conn, ns, "users", "register"); conn.Close() })
			}
			return err
		}},
		{"nats", "nats://127.0.0.1:4222", func(t *testing.T, ns string) error {
			nc, err := nats.Connect("nats://127.0.0.1:4222")
			if err == nil {
				t.Cleanup(func() { deleteStreams(nc, ns); nc.Close() })
			}
			return err
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			ns := uniqueName("req")
			if err := b.cleanup(t, ns); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s: %v (CI needs it)", b.name, err)
				}
				t.Skipf("no %s (%v); start it to run this test", b.name, err)
			}
			users := registrationApp(troupetest.Config(t, troupe.Config{Name: ns, Broker: b.url, Services: []string{"users"}}))
			api := registrationApp(troupetest.Config(t, troupe.Config{Name: ns, Broker: b.url, Services: []string{"api"}}))
			troupetest.Start(t, users)
			troupetest.Start(t, api)
			checkReplies(t, api)
		})
	}
}

// Expect listens before the first event goes out some other way (here
// through Encode and PublishMessages, as an outbox relay would), and Wait
// returns its outcome.
func TestExpectThenWait(t *testing.T) {
	app := registrationApp(troupetest.Config(t, troupe.Config{Name: "expect"}))
	troupetest.Start(t, app)
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "user-7")
	e, err := troupe.Expect(ctx, "user-7", testRegistered, testRegFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	msgs, err := troupe.Encode(ctx, testRegister, registration{Email: "grace@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.PublishMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, troupetest.DefaultTimeout)
	defer cancel()
	r, err := e.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := troupe.ReplyAs(r, testRegistered); err != nil || u.UserID != "u-grace@example.com" || r.CorrelationID != "user-7" {
		t.Errorf("reply %+v: %+v, %v", r.Envelope, u, err)
	}
	e.Close()
	e.Close()

	if _, err := troupe.Expect(context.Background(), "x", testRegistered); !errors.Is(err, troupe.ErrNoApp) {
		t.Errorf("no app: %v", err)
	}
	if _, err := troupe.Expect(ctx, "", testRegistered); err == nil {
		t.Error("empty correlation id accepted")
	}
	if _, err := troupe.Expect(ctx, "x", troupe.NewTopic[registered]("unknown_topic", 1)); !errors.Is(err, troupe.ErrUndeclaredTopic) {
		t.Errorf("unknown outcome: %v", err)
	}
	e2, err := troupe.Expect(ctx, "nobody-answers", testRegistered)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := e2.Wait(short); !errors.Is(err, troupe.ErrRequestTimeout) || !strings.Contains(err.Error(), "nobody-answers") {
		t.Errorf("timeout: %v", err)
	}
}
