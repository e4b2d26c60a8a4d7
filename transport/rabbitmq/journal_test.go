package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// journalBroker connects a transport and a plain client to the test
// broker under a fresh namespace, and deletes the journal queue when the
// test ends. It skips without a broker, except in CI.
func journalBroker(t *testing.T) (*Transport, *amqp.Connection) {
	t.Helper()
	url := os.Getenv("TROUPE_TEST_AMQP")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	raw, err := amqp.Dial(url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ: %v (CI needs it)", err)
		}
		t.Skipf("no RabbitMQ (%v); start rabbitmq-server or set TROUPE_TEST_AMQP", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "jt" + hex.EncodeToString(b[:])
	tr, err := Connect(context.Background(), url, Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close(context.Background())
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(ns+".journal", false, false, false)
			_ = ch.ExchangeDelete("troupe."+ns, false, false)
			_ = ch.Close()
		}
		raw.Close()
	})
	return tr, raw
}

// TestJournalStreamQueue declares the journal, checks its limits on the
// broker, and writes, reads and follows records.
func TestJournalStreamQueue(t *testing.T) {
	tr, raw := journalBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// What every transport's journal does is in the conformance suite
	// (Journal); this test checks the stream queue's arguments and how
	// since is read on RabbitMQ.
	cfg := transport.JournalConfig{MaxAge: 90 * time.Minute, MaxBytes: 32 << 20}
	if err := tr.DeclareJournal(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// RabbitMQ accepts a second declaration only with equal arguments: the
	// queue is a stream with exactly these limits.
	args := journalArgs(cfg)
	if args["x-max-age"] != "5400s" || args["x-max-length-bytes"] != int64(32<<20) || args["x-stream-max-segment-size-bytes"] != int64(2<<20) {
		t.Errorf("arguments %v", args)
	}
	declare := func(args amqp.Table) error {
		ch, err := raw.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		_, err = ch.QueueDeclare(tr.journalQueue(), true, false, false, false, args)
		return err
	}
	if err := declare(args); err != nil {
		t.Errorf("the journal queue differs from its arguments: %v", err)
	}
	other := journalArgs(transport.JournalConfig{MaxAge: time.Hour, MaxBytes: 32 << 20})
	var ae *amqp.Error
	if err := declare(other); !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Errorf("declaring it with another max age: %v, want PRECONDITION_FAILED", err)
	}
	// Declaring again with other limits keeps the queue and warns.
	if err := tr.DeclareJournal(ctx, transport.JournalConfig{MaxAge: time.Hour}); err != nil {
		t.Errorf("declare with other limits: %v", err)
	}

	followed := make(chan transport.JournalRecord, 8)
	tp, err := tr.FollowJournal(ctx, "b", time.Time{}, func(r transport.JournalRecord) { followed <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if err := tr.AppendJournal(ctx,
		transport.JournalRecord{Correlation: "a", Data: []byte("a1")},
		transport.JournalRecord{Correlation: "b", Data: []byte("b1")},
		transport.JournalRecord{Correlation: "a", Data: []byte("a2")},
	); err != nil {
		t.Fatal(err)
	}
	// since lets the reader start later in the stream; one in the future
	// (a reader's clock ahead of the broker's) must not skip its marker.
	for _, c := range []struct {
		since time.Time
		want  string
	}{{time.Time{}, "a:a1 a:a2"}, {time.Now().Add(-time.Minute), "a:a1 a:a2"}, {time.Now().Add(time.Hour), "a:a1 a:a2"}} {
		var got []string
		if err := tr.ReadJournal(ctx, "a", c.since, func(r transport.JournalRecord) error {
			got = append(got, r.Correlation+":"+string(r.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("read a since %v: %v, want %s", c.since, got, c.want)
		}
	}
	select {
	case r := <-followed:
		if r.Correlation != "b" || string(r.Data) != "b1" {
			t.Errorf("followed %s:%s", r.Correlation, r.Data)
		}
	case <-ctx.Done():
		t.Fatal("follow saw nothing")
	}
	stop := errors.New("stop")
	if err := tr.ReadJournal(ctx, "a", time.Time{}, func(transport.JournalRecord) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("read returns fn's error: %v", err)
	}
	_ = tp.Close()
	select {
	case <-tp.Done():
	case <-ctx.Done():
		t.Fatal("closed tap not done")
	}
}
