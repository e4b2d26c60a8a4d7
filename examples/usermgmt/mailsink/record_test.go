package mailsink_test

import (
	"net/smtp"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/troupetest"
)

// The sink's record is its own database: a mail sent twice under one
// Message-ID is kept once and counted as a repeat, and the record outlives
// the process that ran the sink.
func TestRecordKeepsOneMailPerMessageIDAcrossRestarts(t *testing.T) {
	storetest.Each(t, "mailsink_record", func(t *testing.T, db *store.DB) {
		dir := t.TempDir()
		run := func() *mailsink.Sink {
			t.Helper()
			app := troupe.New(troupetest.Config(t, troupe.Config{Name: "mailsink_record", DataDir: dir}))
			sink := mailsink.New("127.0.0.1:0")
			mailsink.Register(app, sink, db)
			troupetest.Start(t, app)
			return sink
		}
		send := func(sink *mailsink.Sink, to, msgID string) {
			t.Helper()
			msg := "From: a@example.com\r\nTo: " + to + "\r\nSubject: Welcome\r\nMessage-ID: " + msgID + "\r\n\r\nhello\r\n"
			if err := smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{to}, []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		sink := run()
		send(sink, "ada@example.com", "<1@test>")
		send(sink, "ada@example.com", "<1@test>") // the sender again, after a crash
		send(sink, "grace@example.com", "<2@test>")
		st, err := sink.Stats()
		if err != nil || st.Mails != 2 || st.RepeatedRequests != 1 || st.SentTwice != 0 {
			t.Errorf("stats %+v (%v), want 2 mails, 1 repeated request, none sent twice", st, err)
		}
		if m := sink.Mails("ADA@example.com"); len(m) != 1 || m[0].Repeats != 1 || m[0].MessageID != "<1@test>" || m[0].ID != 1 {
			t.Errorf("Ada's mails: %+v, want one, repeated once", m)
		}

		// A new process, a new sink, the same database.
		sink = run()
		if m := sink.Mails(""); len(m) != 2 || m[1].To[0] != "grace@example.com" || m[1].ID != 2 {
			t.Errorf("after a restart the sink lists %+v, want the 2 mails", m)
		}
		send(sink, "ada@example.com", "<3@test>") // the same words under a new Message-ID
		if st, err := sink.Stats(); err != nil || st.Mails != 3 || st.SentTwice != 1 {
			t.Errorf("stats %+v (%v), want 3 mails and Ada told the same thing twice", st, err)
		}
	})
}
