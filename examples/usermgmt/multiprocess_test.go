//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process test runs the example as three OS processes sharing
// one external broker, the way it would run in production:
//
//	users,coupons   the API (HTTP)
//	mailer          no HTTP; asks the API over HTTP, sends to the sink
//	mailsink        the SMTP sink and GET /mail (HTTP), its record in its own data directory
//
// and tells three stories through them: every registration waited for with
// Prefer: wait gets its 201 (the outcome comes from another process,
// through the broker); with the sink process killed, registrations go on
// and their mails arrive once it is back, except for a user deleted in the
// meantime; and with each process killed with SIGKILL in turn while
// registrations come in, every accepted registration ends in one state,
// each user mailed once.

// subscriptions are the app's subscriptions as "service.name", from its
// declaration, for dead letters and the RabbitMQ cleanup.
func subscriptions(t *testing.T) []string {
	app, err := usermgmt.NewApp(troupe.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			subs = append(subs, sub.String())
		}
	}
	return subs
}

const (
	mpUsers       = 40 // registrations waited for
	mpParallelism = 8
	mpOutage      = 6  // registrations while the sink is down
	mpCrash       = 60 // registrations while the processes are killed
)

type mpBroker struct {
	name        string
	env, def    string
	probe       func(url string) error
	deadLetters func(url, ns string, subs []string) (int, error)
	cleanup     func(t *testing.T, url, ns string, subs []string)
}

func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program and runs it as three processes per broker")
	}
	bin := build.Program(t)
	for _, b := range []mpBroker{rabbitBroker, natsBroker} {
		t.Run(b.name, func(t *testing.T) {
			url := os.Getenv(b.env)
			if url == "" {
				url = b.def
			}
			if err := b.probe(url); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s at %s: %v (CI needs it; set %s)", b.name, proctest.Redacted(url), err, b.env)
				}
				t.Skipf("no %s at %s (%v); start it or set %s to run this test", b.name, proctest.Redacted(url), err, b.env)
			}
			runMultiProcess(t, bin, b, url)
		})
	}
}

func runMultiProcess(t *testing.T, bin string, b mpBroker, url string) {
	ns := "usermgmt_mp_" + randomHex(5)
	subs := subscriptions(t)
	t.Cleanup(func() { b.cleanup(t, url, ns, subs) }) // runs after the processes are gone
	env := []string{"USERMGMT_APP_NAME=" + ns}
	apiAddr, sinkHTTP, smtpAddr := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	api := "http://" + apiAddr
	sinkBase := "http://" + sinkHTTP
	started := func(p *proctest.Process) bool { return strings.Contains(p.Out.String(), "troupe app started") }

	sinkDir := t.TempDir() // the sink's record, kept across its lives
	sinkLives := 0
	startSink := func() *proctest.Process {
		sinkLives++
		return proctest.Start(t, fmt.Sprintf("mailsink (life %d)", sinkLives), bin, env, "--broker", url, "--services", "mailsink", "--http", sinkHTTP,
			"--mail-sink", smtpAddr, "--data", sinkDir)
	}
	apiProc := proctest.StartCrashing(t, "users,coupons", bin, env, func(*proctest.Process) bool { return proctest.Healthy(api) },
		"--broker", url, "--services", "users,coupons", "--http", apiAddr, "--data", t.TempDir())
	mailerProc := proctest.StartCrashing(t, "mailer", bin, env, started,
		"--broker", url, "--services", "mailer", "--http", "off", "--data", t.TempDir(), "--users-url", api, "--smtp", smtpAddr)
	sink := startSink()
	all := func() []*proctest.Process { return []*proctest.Process{apiProc.Current(), mailerProc.Current(), sink} }
	proctest.WaitFor(t, "the sink to start", 30*time.Second, all(), func() bool { return started(sink) })
	defer client.CloseIdleConnections()

	// 1. Registrations that wait for their welcome mail: each answer comes
	// from the mailer's process, through the broker.
	began := time.Now()
	var (
		mu       sync.Mutex
		ids      = make(map[string]string) // email → user id
		problems []string
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range mpParallelism {
		wg.Go(func() {
			for i := range next {
				email := fmt.Sprintf("user%03d@example.com", i)
				status, body, err := call("POST", api+"/users", fmt.Sprintf(`{"name":"User %d","email":%q}`, i, email), "Prefer: wait=25")
				var u struct {
					ID          string
					WelcomeMail struct{ Status string } `json:"welcome_mail"`
				}
				mu.Lock()
				if err != nil || status != http.StatusCreated || json.Unmarshal(body, &u) != nil || u.WelcomeMail.Status != "sent" {
					problems = append(problems, fmt.Sprintf("%s: %d %s (%v)", email, status, body, err))
				} else {
					ids[email] = u.ID
				}
				mu.Unlock()
			}
		})
	}
	for i := range mpUsers {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d of %d registrations did not get 201 with the mail sent; first: %s", len(problems), mpUsers, problems[0])
	}
	t.Logf("%s: %d registrations answered 201 after their welcome mail in %s", b.name, mpUsers, time.Since(began).Round(time.Millisecond))
	mails, err := mailCount(sinkBase)
	if err != nil {
		t.Fatal(err)
	}
	for email := range ids {
		if mails[email] != 1 {
			t.Errorf("%s got %d mails, want 1", email, mails[email])
		}
	}
	if len(mails) != mpUsers {
		t.Errorf("mails to %d addresses, want %d", len(mails), mpUsers)
	}

	// 2. The mail server's process dies. Registrations go on; one user is
	// deleted before the server is back.
	sink.Kill(t)
	var outage []string
	for i := range mpOutage {
		email := fmt.Sprintf("outage%d@example.com", i)
		status, body, err := call("POST", api+"/users", fmt.Sprintf(`{"name":"Outage %d","email":%q}`, i, email))
		var u struct{ ID string }
		if err != nil || status != http.StatusAccepted || json.Unmarshal(body, &u) != nil {
			t.Fatalf("POST during the outage: %d %s (%v)", status, body, err)
		}
		outage = append(outage, email)
		ids[email] = u.ID
	}
	proctest.WaitFor(t, "the mailer to fail against the dead server", 30*time.Second, all()[:2], func() bool {
		return strings.Contains(mailerProc.Current().Out.String(), "connection refused")
	})
	deleted := outage[0]
	if status, body, err := call("DELETE", api+"/users/"+ids[deleted], ""); err != nil || status != http.StatusNoContent {
		t.Fatalf("DELETE %s: %d %s (%v)", deleted, status, body, err)
	}
	sink = startSink()
	proctest.WaitFor(t, "the sink to start again", 30*time.Second, all(), func() bool { return started(sink) })
	// The deleted user's registration is settled when the mailer logs it.
	proctest.WaitFor(t, "the outage's mails", 90*time.Second, all(), func() bool {
		m, err := mailCount(sinkBase)
		return err == nil && len(m) >= mpUsers+mpOutage-1 && strings.Contains(mailerProc.Current().Out.String(), "mailer: user "+ids[deleted]+" is gone")
	})
	mails, err = mailCount(sinkBase)
	if err != nil {
		t.Fatal(err)
	}
	for _, email := range outage[1:] {
		if mails[email] != 1 {
			t.Errorf("%s got %d mails after the outage, want 1", email, mails[email])
		}
	}
	if mails[deleted] != 0 || len(mails) != mpUsers+mpOutage-1 {
		t.Errorf("after the outage the sink has mails for %d addresses (%d for the deleted %s); want %d, none for the deleted", len(mails), mails[deleted], deleted, mpUsers+mpOutage-1)
	}
	t.Logf("%s: outage of the sink process: %d registrations, %d mailed after it came back, 1 skipped (deleted)", b.name, mpOutage, mpOutage-1)

	// 3. Each process killed with SIGKILL in turn, and restarted on the
	// same data, while registrations come in with Idempotency-Keys.
	crash := make([]string, mpCrash)
	for i := range crash {
		crash[i] = fmt.Sprintf("crash%03d@example.com", i)
	}
	var accepted atomic.Int64
	kills := 0
	wave := mpCrash / 3
	for k := range 3 {
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			time.Sleep(time.Duration(mrand.IntN(40)) * time.Millisecond) // a random moment of the wave
			switch k {
			case 0:
				apiProc.KillAndRestart(t)
			case 1:
				mailerProc.KillAndRestart(t)
			case 2:
				sink.Kill(t)
				sink = startSink()
			}
		}()
		placeRegistrations(t, api, crash[k*wave:(k+1)*wave], ids, &mu, &accepted)
		<-killed
		kills++
	}
	proctest.WaitFor(t, "the sink to start again", 30*time.Second, all(), func() bool { return started(sink) })
	want := map[string]string{deleted: "skipped"}
	for email := range ids {
		if _, ok := want[email]; !ok {
			want[email] = "sent"
		}
	}
	o := settleRegistrations(t, api, sinkBase, ids, want, all)
	report(t, "one process per service, "+b.name, o, kills)

	dead, err := b.deadLetters(url, ns, subs)
	if err != nil {
		t.Errorf("counting dead letters: %v", err)
	} else if dead != 0 {
		t.Errorf("%d dead letters, want none", dead)
	}
	client.CloseIdleConnections()
	apiProc.Stop(t)
	mailerProc.Stop(t)
	sink.Stop(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

var rabbitBroker = mpBroker{
	name: "rabbitmq", env: "TROUPE_TEST_AMQP", def: "amqp://guest:guest@127.0.0.1:5672/",
	probe: func(url string) error {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	},
	deadLetters: func(url, ns string, subs []string) (int, error) {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		n := 0
		for _, s := range subs {
			ch, err := conn.Channel()
			if err != nil {
				return 0, err
			}
			q, err := ch.QueueDeclarePassive(ns+"."+s+".dlq", true, false, false, false, nil)
			ch.Close()
			if err != nil {
				return 0, fmt.Errorf("dead-letter queue of %s: %w", s, err)
			}
			n += q.Messages
		}
		return n, nil
	},
	cleanup: func(t *testing.T, url, ns string, subs []string) {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			t.Errorf("cleanup of %s: %v", ns, err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("cleanup of %s: %v", ns, err)
			return
		}
		defer ch.Close()
		for _, s := range subs {
			q := ns + "." + s
			names := []string{q, q + ".dlq"}
			for _, d := range rabbitmq.DefaultRetryDelays {
				names = append(names, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
			}
			for _, name := range names {
				if _, err := ch.QueueDelete(name, false, false, false); err != nil {
					t.Errorf("delete queue %s: %v", name, err)
					return
				}
			}
		}
		if err := ch.ExchangeDelete("troupe."+ns, false, false); err != nil {
			t.Errorf("delete exchange troupe.%s: %v", ns, err)
		}
	},
}

var natsBroker = mpBroker{
	name: "nats", env: "TROUPE_TEST_NATS", def: "nats://127.0.0.1:4222",
	probe: func(url string) error {
		nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	},
	deadLetters: func(url, ns string, _ []string) (int, error) {
		n := 0
		err := proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, "TROUPE_"+ns+"_DLQ")
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err == nil {
				n = int(info.State.Msgs)
			}
			return err
		})
		return n, err
	},
	cleanup: func(t *testing.T, url, ns string, _ []string) {
		err := proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			return natsjs.DeleteNamespace(ctx, js.Conn(), ns)
		})
		if err != nil {
			t.Errorf("cleanup of %s: %v", ns, err)
		}
	},
}
