package transport_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

func TestPackJournal(t *testing.T) {
	stored := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	recs := []transport.JournalRecord{
		{Correlation: "a", Data: []byte(`{"n":1}`)},
		{Correlation: "", Data: nil},
		{Correlation: strings.Repeat("c", 300), Data: []byte(strings.Repeat("x", 70000))},
	}
	body := transport.PackJournal(recs)
	var got []transport.JournalRecord
	if err := transport.UnpackJournal(body, stored, func(r transport.JournalRecord) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("unpacked %d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		if r.Correlation != recs[i].Correlation || string(r.Data) != string(recs[i].Data) || !r.Stored.Equal(stored) {
			t.Errorf("record %d: %q/%d bytes, want %q/%d bytes", i, r.Correlation, len(r.Data), recs[i].Correlation, len(recs[i].Data))
		}
	}

	stop := errors.New("stop")
	n := 0
	if err := transport.UnpackJournal(body, stored, func(transport.JournalRecord) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d records", err, n)
	}

	// A cut body yields the whole records before the cut, then an error.
	n = 0
	err := transport.UnpackJournal(body[:len(body)-10], stored, func(transport.JournalRecord) error { n++; return nil })
	if !errors.Is(err, transport.ErrMalformed) || n != 2 {
		t.Errorf("cut body: %v after %d records, want ErrMalformed after 2", err, n)
	}
	if err := transport.UnpackJournal([]byte{0xff}, stored, func(transport.JournalRecord) error { return nil }); !errors.Is(err, transport.ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
	if err := transport.UnpackJournal(nil, stored, func(transport.JournalRecord) error { return errors.New("called") }); err != nil {
		t.Errorf("empty body: %v", err)
	}
}
