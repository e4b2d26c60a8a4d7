package messenger_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/troupetest"
)

func start(t *testing.T, name, dir string, db *store.DB) (*messenger.Messenger, func()) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: name, DataDir: dir}))
	app.Service("notification")
	m := messenger.Declare(app, db, "notification")
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := app.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return m, stop
}

// A key is sent once; the record outlives a restart; a message sent
// again under another key is counted as the customer told twice.
func TestMessengerSendsOncePerKey(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "msg-" + hex.EncodeToString(b)
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		dir := t.TempDir()
		m, stop := start(t, name, dir, db)
		shipped := messenger.Message{To: "ada", Ref: "o1", Subject: "shipped", Channel: "email", Text: "on its way"}
		first, sent, err := m.Send(ctx, "o1/shipped", shipped)
		if err != nil || !sent {
			t.Fatalf("first send: sent %v, %v", sent, err)
		}
		again, sent, err := m.Send(ctx, "o1/shipped", shipped)
		if err != nil || sent || again.ID != first.ID {
			t.Fatalf("repeat: %+v sent %v, %v; want the first message, nothing sent", again, sent, err)
		}
		stop()

		m, _ = start(t, name, dir, db)
		if _, sent, err := m.Send(ctx, "o1/shipped/2", shipped); err != nil || !sent {
			t.Fatalf("a second key: sent %v, %v", sent, err)
		}
		if _, _, err := m.Send(ctx, "o2/shipped", messenger.Message{To: "bob", Ref: "o2", Subject: "shipped", Channel: "sms", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		st, err := m.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := (messenger.Stats{Messages: 3, RepeatedRequests: 1, SentTwice: 1}); st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
		if by, err := m.BySubject(ctx); err != nil || len(by) != 1 || by["shipped"] != 3 {
			t.Errorf("by subject: %v, %v; want 3 shipped", by, err)
		}
		toAda, err := m.To(ctx, "ada")
		if err != nil || len(toAda) != 2 || toAda[0].ID != first.ID || toAda[0].Repeats != 1 {
			t.Errorf("to ada: %+v, %v", toAda, err)
		}
		aboutO2, err := m.About(ctx, "o2")
		if err != nil || len(aboutO2) != 1 || aboutO2[0].Channel != "sms" {
			t.Errorf("about o2: %+v, %v", aboutO2, err)
		}
	})
}
