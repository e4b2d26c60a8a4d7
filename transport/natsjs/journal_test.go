package natsjs_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// TestJournal runs the journal on the embedded server and, when there is
// one, on the local NATS server.
func TestJournal(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		tr, err := srv.Connect(context.Background(), natsjs.Config{Namespace: "journal"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close(context.Background()) })
		exerciseJournal(t, tr, "journal")
	})
	t.Run("external", func(t *testing.T) {
		nc, err := nats.Connect("nats://127.0.0.1:4222")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("NATS: %v (CI needs it)", err)
			}
			t.Skipf("no NATS server on 127.0.0.1:4222 (%v); start nats-server -js to run this test", err)
		}
		ns := "journal" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
		tr, err := natsjs.New(context.Background(), nc, natsjs.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = tr.Close(context.Background())
			_ = natsjs.DeleteNamespace(context.Background(), nc, ns)
			nc.Close()
		})
		exerciseJournal(t, tr, ns)
	})
}

func exerciseJournal(t *testing.T, tr *natsjs.Transport, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What every transport's journal does is in the conformance suite
	// (Journal); this test checks NATS's own layout and packing.
	if err := tr.DeclareJournal(ctx, transport.JournalConfig{MaxAge: 2 * time.Hour, MaxBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(tr.Conn())
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, "TROUPE_"+ns+"_JOURNAL")
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo().Config; c.MaxAge != 2*time.Hour || c.MaxBytes != 4<<20 || len(c.Subjects) != 1 || c.Subjects[0] != "troupe."+ns+".j.>" {
		t.Errorf("journal stream config: %+v", c)
	}

	// Ids that are not subject tokens are hashed, and never mixed up.
	odd, plain := "order 7.b*>", "0193a1b2-order-7"
	followed := make(chan transport.JournalRecord, 8)
	tp, err := tr.FollowJournal(ctx, odd, time.Time{}, func(r transport.JournalRecord) { followed <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if err := tr.AppendJournal(ctx,
		transport.JournalRecord{Correlation: odd, Data: []byte("o1")},
		transport.JournalRecord{Correlation: plain, Data: []byte("p1")},
		transport.JournalRecord{Correlation: odd, Data: []byte("o2")},
	); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, want string }{{odd, "o1,o2"}, {plain, "p1"}, {"nobody", ""}} {
		var got []string
		if err := tr.ReadJournal(ctx, c.id, time.Time{}, func(r transport.JournalRecord) error {
			if r.Correlation != c.id || r.Stored.IsZero() {
				t.Errorf("record %+v", r)
			}
			got = append(got, string(r.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("read %q: %v, want %s", c.id, got, c.want)
		}
	}
	for _, want := range []string{"o1", "o2"} {
		select {
		case r := <-followed:
			if string(r.Data) != want {
				t.Errorf("followed %s, want %s", r.Data, want)
			}
		case <-ctx.Done():
			t.Fatalf("follow did not see %s", want)
		}
	}
	_ = tp.Close()
	select {
	case <-tp.Done():
	case <-ctx.Done():
		t.Fatal("closed tap not done")
	}

	// A transaction's records larger than one message are split over
	// several, and read back whole, in order.
	big := strings.Repeat("x", 200<<10)
	var many []transport.JournalRecord
	for i := range 3 {
		many = append(many, transport.JournalRecord{Correlation: "big", Data: []byte(string(rune('a'+i)) + big)})
	}
	if err := tr.AppendJournal(ctx, many...); err != nil {
		t.Fatal(err)
	}
	var firsts []byte
	if err := tr.ReadJournal(ctx, "big", time.Time{}, func(r transport.JournalRecord) error {
		if len(r.Data) != len(big)+1 {
			t.Errorf("record of %d bytes", len(r.Data))
		}
		firsts = append(firsts, r.Data[0])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if string(firsts) != "abc" {
		t.Errorf("big records read as %q", firsts)
	}
	if n, err := js.Stream(ctx, "TROUPE_"+ns+"_JOURNAL"); err != nil {
		t.Fatal(err)
	} else if msgs := n.CachedInfo().State.Msgs; msgs != 2+3 {
		t.Errorf("journal holds %d messages, want 5: one per transaction of the first append, one per big record", msgs)
	}

	// Following from a time in the past replays what was stored since.
	all := make(chan transport.JournalRecord, 8)
	tp2, err := tr.FollowJournal(ctx, "", time.Now().Add(-time.Minute), func(r transport.JournalRecord) { all <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer tp2.Close()
	for i := range 6 {
		select {
		case <-all:
		case <-ctx.Done():
			t.Fatalf("follow since a minute ago saw %d records, want 6", i)
		}
	}
}
