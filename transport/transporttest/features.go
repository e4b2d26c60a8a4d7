package transporttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// testHistory: a subscription declared with StartAtBeginning receives the
// events its topic stored before it existed; one declared without does
// not. Only for transports that claim Features.History.
func testHistory(t *testing.T, h Harness) {
	if !h.Features.History {
		t.Skip("the harness does not claim Features.History")
	}
	tr := h.Open(t, newNamespace())
	// A first subscription, so that every transport keeps the events.
	declare(t, tr, newSub(topic, "audit", "log"))
	old := newMessages(topic, 3)
	publish(t, tr, old...)

	late := newSub(topic, "reports", "rebuild")
	late.StartAtBeginning = true
	fresh := newSub(topic, "reports", "live")
	declare(t, tr, late, fresh)
	now := newMessage(topic, 3)
	publish(t, tr, now)

	gotLate, gotFresh := newCollector(), newCollector()
	consume(t, tr, late, gotLate.handler())
	consume(t, tr, fresh, gotFresh.handler())
	gotLate.waitUnique(t, 4, "StartAtBeginning subscription: the three stored events and the new one")
	gotFresh.waitUnique(t, 1, "subscription without StartAtBeginning")
	quiet(t, lease)
	if gotFresh.total() != 1 || gotFresh.times(now.ID) != 1 {
		t.Errorf("the subscription without StartAtBeginning got %v, want only the event published after it", gotFresh.counts())
	}
}

// testLag: a transport that claims Features.Lag counts, for a declared
// subscription, the events it holds that the subscription has not
// finished: those waiting, and those waiting for a retry or a replay; not
// those acknowledged or dead-lettered. Lag of an undeclared subscription
// fails with ErrNotFound, and after Close with ErrClosed.
func testLag(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	lagger, ok := tr.(transport.Lagger)
	requireFeature(t, h.Features.Lag, "Lag", ok)
	sub := newSub(topic, "billing", "charge")
	if _, err := lagger.Lag(callCtx(t), sub.SubscriptionRef); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("Lag of an undeclared subscription: %v, want an error wrapping transport.ErrNotFound", err)
	}
	declare(t, tr, sub)
	WaitLag(t, lagger, sub.SubscriptionRef, 0)
	later, bad := newMessage(topic, 0), newMessage(topic, 1)
	rest := newMessages(topic, 3)
	publish(t, tr, append([]*transport.Message{later, bad}, rest...)...)
	WaitLag(t, lagger, sub.SubscriptionRef, 5)

	got := newCollector()
	c := consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		switch d.ID {
		case later.ID:
			return transport.RetryAfter(time.Hour, errors.New("transporttest: not now"))
		case bad.ID:
			return transport.Permanent(errors.New("transporttest: bad"))
		}
		return nil
	})
	got.waitUnique(t, 5, "every event once")
	waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	// The retry waiting an hour still counts; the acknowledged events and
	// the dead letter do not.
	WaitLag(t, lagger, sub.SubscriptionRef, 1)
	stop(t, c)
	dl := deadLetters(t, tr, sub.SubscriptionRef)[0]
	if err := tr.Replay(callCtx(t), sub.SubscriptionRef, dl.ID); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	WaitLag(t, lagger, sub.SubscriptionRef, 2)
	if err := tr.Close(callCtx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := lagger.Lag(callCtx(t), sub.SubscriptionRef); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Lag after Close: %v, want an error wrapping transport.ErrClosed", err)
	}
}

// WaitLag polls l.Lag for sub until it reports want, and fails the test
// with the last answer when it does not within the suite's wait (30
// seconds). Brokers count asynchronously, so a test of Lag waits for it.
func WaitLag(t testing.TB, l transport.Lagger, sub transport.SubscriptionRef, want int64) {
	t.Helper()
	var (
		got int64
		err error
	)
	waitForEvery(t, 20*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		got, err = l.Lag(ctx, sub)
		return err == nil && got == want
	}, func() string { return fmt.Sprintf("Lag(%s) = %d, %v; want %d", sub, got, err, want) })
}

// stop stops c within the suite's wait, failing the test on an error.
func stop(t testing.TB, c transport.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// testJournal: a transport that claims Features.Journal keeps the
// namespace's journal: nothing before DeclareJournal (ErrNoJournal), a
// MaxAge required; records read back by correlation id, in order, whatever
// the id's characters; followed as they are stored, for one correlation id
// or all, from now or from a time in the past; fn's error ends a read.
func testJournal(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	j, ok := tr.(transport.Journaler)
	requireFeature(t, h.Features.Journal, "Journal", ok)
	ctx := callCtx(t)
	noop := func(transport.JournalRecord) error { return nil }
	if err := j.ReadJournal(ctx, "c", time.Time{}, noop); !errors.Is(err, transport.ErrNoJournal) {
		t.Errorf("ReadJournal before DeclareJournal: %v, want an error wrapping transport.ErrNoJournal", err)
	}
	if err := j.AppendJournal(ctx, transport.JournalRecord{Correlation: "c", Data: []byte("x")}); !errors.Is(err, transport.ErrNoJournal) {
		t.Errorf("AppendJournal before DeclareJournal: %v, want an error wrapping transport.ErrNoJournal", err)
	}
	if _, err := j.FollowJournal(ctx, "", time.Time{}, func(transport.JournalRecord) {}); !errors.Is(err, transport.ErrNoJournal) {
		t.Errorf("FollowJournal before DeclareJournal: %v, want an error wrapping transport.ErrNoJournal", err)
	}
	if err := j.DeclareJournal(ctx, transport.JournalConfig{}); err == nil {
		t.Error("DeclareJournal without MaxAge succeeded")
	}
	if err := j.DeclareJournal(ctx, transport.JournalConfig{MaxAge: time.Hour, MaxBytes: 8 << 20}); err != nil {
		t.Fatalf("DeclareJournal: %v", err)
	}

	odd, plain := "order 7.b*> «x»", "0193a1b2-order-7" // an id that is no subject token, and one that is
	followed := make(chan transport.JournalRecord, 8)
	tp, err := j.FollowJournal(ctx, odd, time.Time{}, func(r transport.JournalRecord) { followed <- r })
	if err != nil {
		t.Fatalf("FollowJournal: %v", err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	if err := j.AppendJournal(ctx,
		transport.JournalRecord{Correlation: odd, Data: []byte("o1")},
		transport.JournalRecord{Correlation: plain, Data: []byte("p1")},
		transport.JournalRecord{Correlation: odd, Data: []byte("o2")},
	); err != nil {
		t.Fatalf("AppendJournal: %v", err)
	}
	for _, c := range []struct{ id, want string }{{odd, "o1,o2"}, {plain, "p1"}, {"nobody", ""}} {
		var got []string
		if err := j.ReadJournal(ctx, c.id, time.Time{}, func(r transport.JournalRecord) error {
			if r.Correlation != c.id || r.Stored.IsZero() {
				t.Errorf("ReadJournal(%q) passed %+v", c.id, r)
			}
			got = append(got, string(r.Data))
			return nil
		}); err != nil {
			t.Fatalf("ReadJournal(%q): %v", c.id, err)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("ReadJournal(%q) read %v, want %s", c.id, got, c.want)
		}
	}
	for _, want := range []string{"o1", "o2"} {
		select {
		case r := <-followed:
			if string(r.Data) != want || r.Correlation != odd {
				t.Errorf("followed %s:%s, want %s:%s", r.Correlation, r.Data, odd, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("FollowJournal did not pass %s", want)
		}
	}
	stopErr := errors.New("transporttest: enough")
	if err := j.ReadJournal(ctx, odd, time.Time{}, func(transport.JournalRecord) error { return stopErr }); !errors.Is(err, stopErr) {
		t.Errorf("ReadJournal returned %v, want fn's error", err)
	}
	_ = tp.Close()
	select {
	case <-tp.Done():
	case <-time.After(waitTimeout):
		t.Error("a closed follow is not done")
	}
	all := make(chan transport.JournalRecord, 8)
	tp2, err := j.FollowJournal(ctx, "", time.Now().Add(-time.Minute), func(r transport.JournalRecord) { all <- r })
	if err != nil {
		t.Fatalf("FollowJournal of all since a minute ago: %v", err)
	}
	t.Cleanup(func() { _ = tp2.Close() })
	for i := range 3 {
		select {
		case <-all:
		case <-time.After(waitTimeout):
			t.Fatalf("FollowJournal of all since a minute ago passed %d records, want the 3 stored", i)
		}
	}
}
