// Package mailsink is the user-management example's stand-in for a mail
// server: a small SMTP server (on github.com/emersion/go-smtp) that accepts
// every mail and keeps it, and a service whose route shows what arrived, as
// MailCatcher did for the seed.
//
//	GET /mail            every mail received, oldest first, and the sink's counts
//	GET /mail?to=ADDR    the mails to one recipient
//
// It is the outside system of the example, so its record is its own and
// outlives the services' crashes: where the mailsink service runs, the
// mails go to mailsink.db in the data directory (the mailsink_mails table
// on PostgreSQL). A sink used outside an app keeps them in memory.
//
// Like a provider that takes an idempotency key, it keeps one copy per
// Message-ID: a mail whose Message-ID it received before is accepted, not
// kept again, and counted as a repeat ([Stats]). The mailer sends a mail
// again after a crash under the same Message-ID, so the repeat is visible
// and the user gets one mail.
//
// Recipients at the domain [RejectDomain] are refused with a permanent
// error (550), to show what the mailer does with a mail that cannot be
// delivered.
package mailsink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// ServiceName is the sink's service name in the app and on --services.
const ServiceName = "mailsink"

// DefaultAddr is where the sink listens unless told otherwise.
const DefaultAddr = "127.0.0.1:2525"

// RejectDomain is the domain whose recipients the sink refuses for good.
const RejectDomain = "bounce.example"

// maxMessageBytes bounds one mail.
const maxMessageBytes = 1 << 20

// Mail is one mail the sink received.
type Mail struct {
	// ID numbers the mails in the order they arrived, from 1.
	ID         int       `json:"id"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
	Body       string    `json:"body"`
	ReceivedAt time.Time `json:"received_at"`
	// Repeats counts the later deliveries of the same Message-ID, which
	// the sink accepted and did not keep again.
	Repeats int `json:"repeats"`
}

// Stats sums up what the sink received.
type Stats struct {
	// Mails counts the mails kept, one per Message-ID.
	Mails int `json:"mails"`
	// RepeatedRequests counts deliveries of a Message-ID received before:
	// a mail sent again (after a crash of the sender), kept once.
	RepeatedRequests int `json:"repeated_requests"`
	// SentTwice counts (recipients, subject) pairs with more than one mail
	// under different Message-IDs: someone told the same thing twice, in
	// a way no Message-ID could catch.
	SentTwice int `json:"sent_twice"`
}

var schema = []string{`CREATE TABLE IF NOT EXISTS mailsink_mails (
	id          TEXT PRIMARY KEY,
	seq         BIGINT NOT NULL,
	from_addr   TEXT NOT NULL,
	recipients  TEXT NOT NULL,
	subject     TEXT NOT NULL,
	message_id  TEXT NOT NULL,
	body        TEXT NOT NULL,
	received_us BIGINT NOT NULL,
	repeats     INTEGER NOT NULL DEFAULT 0
)`,
	`CREATE INDEX IF NOT EXISTS mailsink_mails_seq ON mailsink_mails (seq)`,
}

// Sink is an SMTP server that keeps the mails it receives. Its mails
// survive Stop and Start, so a test can take the server down and bring it
// back, and, once [Register] gave it its database, the process too. It is
// safe for concurrent use.
type Sink struct {
	mu      sync.Mutex
	addr    string
	srv     *smtp.Server
	h       *store.Handle // the durable record, while the app runs
	mem     []Mail        // the record without one
	arrived chan struct{} // closed and replaced when a mail arrives
	log     *slog.Logger
}

// New returns a sink that will listen on addr (host:port; port 0 picks a
// free port at the first Start, which later Starts reuse). It keeps its
// mails in memory until [Register] gives it a database.
func New(addr string) *Sink {
	return &Sink{addr: addr, arrived: make(chan struct{}), log: slog.Default()}
}

// SetAddr changes where a sink that is not running will listen.
func (s *Sink) SetAddr(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		s.addr = addr
	}
}

// Start starts listening. It does nothing if the sink is running.
func (s *Sink) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("mail sink: %w (pick another address with --mail-sink)", err)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(backend{s})
	srv.Domain = "mailsink.local"
	srv.MaxMessageBytes = maxMessageBytes
	srv.MaxRecipients = 50
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = discardLog{}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }() // returns when Stop closes the listener
	return nil
}

// Stop closes the listener and every open connection at once, like a mail
// server that goes down. It does nothing if the sink is not running.
func (s *Sink) Stop() error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Addr returns the address the sink listens on (once started, with the
// port it got).
func (s *Sink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// record returns the durable record, or nil while there is none.
func (s *Sink) record() *store.Handle {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil || s.h.DB() == nil {
		return nil
	}
	return s.h
}

// Mails returns the mails received so far, oldest first; to, when not
// empty, keeps only those to that recipient. A record that cannot be read
// gives none (and is logged).
func (s *Sink) Mails(to string) []Mail {
	m, err := s.List(to)
	if err != nil {
		s.log.Error("mail sink: read the mails", "err", err)
	}
	return m
}

// List is [Sink.Mails] with the record's error.
func (s *Sink) List(to string) ([]Mail, error) {
	h := s.record()
	if h == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []Mail
		for _, m := range s.mem {
			if to == "" || containsFold(m.To, to) {
				out = append(out, m)
			}
		}
		return out, nil
	}
	where, args := "", []any{}
	if to != "" {
		where, args = `WHERE lower(recipients) LIKE ? ESCAPE '\'`, []any{"%\n" + likeEscape(strings.ToLower(to)) + "\n%"}
	}
	rows, err := h.DB().Query(h.Q(`SELECT seq, from_addr, recipients, subject, message_id, body, received_us, repeats
		FROM mailsink_mails `+where+` ORDER BY seq, received_us`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Mail
	for rows.Next() {
		var m Mail
		var to string
		var at int64
		if err := rows.Scan(&m.ID, &m.From, &to, &m.Subject, &m.MessageID, &m.Body, &at, &m.Repeats); err != nil {
			return nil, err
		}
		m.To = strings.Fields(to) // "\n" + one per line + "\n"
		m.ReceivedAt = time.UnixMicro(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// likeEscape escapes the wildcards of LIKE in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Stats sums up the mails received.
func (s *Sink) Stats() (Stats, error) {
	var st Stats
	mails, err := s.List("")
	if err != nil {
		return st, err
	}
	told := make(map[string]int)
	for _, m := range mails {
		st.Mails++
		st.RepeatedRequests += m.Repeats
		told[strings.ToLower(strings.Join(m.To, ","))+"\x00"+m.Subject]++
	}
	for _, n := range told {
		if n > 1 {
			st.SentTwice++
		}
	}
	return st, nil
}

// Arrived returns a channel that is closed when the next mail arrives.
func (s *Sink) Arrived() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// keep records m, once per Message-ID: a Message-ID seen before only
// counts a repeat. An error refuses the mail (the sender tries again).
func (s *Sink) keep(m Mail) error {
	defer func() {
		s.mu.Lock()
		close(s.arrived)
		s.arrived = make(chan struct{})
		s.mu.Unlock()
	}()
	key := m.MessageID
	if key == "" {
		key = "no-message-id-" + newID()
	}
	h := s.record()
	if h == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range s.mem {
			if s.mem[i].MessageID != "" && s.mem[i].MessageID == m.MessageID {
				s.mem[i].Repeats++
				return nil
			}
		}
		m.ID = len(s.mem) + 1
		s.mem = append(s.mem, m)
		return nil
	}
	to := "\n" + strings.Join(m.To, "\n") + "\n"
	_, err := h.DB().Exec(h.Q(`INSERT INTO mailsink_mails (id, seq, from_addr, recipients, subject, message_id, body, received_us)
		VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM mailsink_mails), ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET repeats = mailsink_mails.repeats + 1`),
		key, m.From, to, m.Subject, m.MessageID, m.Body, m.ReceivedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("mail sink: keep the mail: %w", err)
	}
	return nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Register declares the sink's service on app, with the route GET /mail,
// and its database (mailsink.db in the data directory, or the mailsink_
// tables on PostgreSQL). Where the service runs, sink gets the database
// and starts with the app, and stops with it.
func Register(app *troupe.App, sink *Sink, db *store.DB) *troupe.Service {
	svc := app.Service(ServiceName)
	h := store.Declare(app, db, ServiceName, ServiceName, schema...)
	app.OnStart(func(context.Context) error {
		if !app.Runs(ServiceName) {
			return nil
		}
		sink.mu.Lock()
		sink.h, sink.log = h, app.Logger()
		sink.mu.Unlock()
		return sink.Start()
	})
	app.OnStop(func(context.Context) error {
		if !app.Runs(ServiceName) {
			return nil
		}
		err := sink.Stop()
		sink.mu.Lock()
		sink.h = nil
		sink.mu.Unlock()
		return err
	})
	svc.HandleFunc("GET /mail", func(w http.ResponseWriter, r *http.Request) {
		if msg := httpjson.CheckQuery(r.URL.Query(), "to"); msg != "" {
			httpjson.WriteError(w, http.StatusBadRequest, msg)
			return
		}
		q := r.URL.Query()
		to := q.Get("to")
		if len(q["to"]) > 1 {
			httpjson.WriteError(w, http.StatusBadRequest, "give at most one to=ADDRESS")
			return
		}
		if q.Has("to") && !strings.Contains(to, "@") {
			httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("to=%q is not a mail address such as ada@example.com", to))
			return
		}
		mails, err := sink.List(to)
		var st Stats
		if err == nil {
			st, err = sink.Stats()
		}
		if err != nil {
			app.Logger().Error("mail sink: read the mails", "err", err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, "the mails cannot be read right now; try again")
			return
		}
		if mails == nil {
			mails = []Mail{}
		}
		httpjson.WriteJSON(w, http.StatusOK, struct {
			SMTP  string `json:"smtp"`
			Count int    `json:"count"`
			Mails []Mail `json:"mails"`
			Stats
		}{sink.Addr(), len(mails), mails, st})
	})
	svc.HandleFunc("/mail", httpjson.Fallback("/mail", "GET"))
	return svc
}

// backend makes a session per SMTP connection.
type backend struct{ s *Sink }

// NewSession implements smtp.Backend.
func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{sink: b.s}, nil }

// session is one SMTP conversation: MAIL, RCPT…, DATA, any number of times.
type session struct {
	sink *Sink
	from string
	to   []string
}

// Reset forgets the mail in progress (RSET, or after DATA).
func (s *session) Reset() { s.from, s.to = "", nil }

// Logout ends the session; it holds nothing to free.
func (s *session) Logout() error { return nil }

// Mail takes the sender of MAIL FROM.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

// Rcpt takes a recipient of RCPT TO, refusing those at RejectDomain.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, domain, _ := strings.Cut(to, "@"); strings.EqualFold(domain, RejectDomain) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox: " + to}
	}
	s.to = append(s.to, to)
	return nil
}

// Data reads the mail and keeps it.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Mail{From: s.from, To: append([]string(nil), s.to...), ReceivedAt: time.Now().UTC()}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "not a mail message: " + err.Error()}
	}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		m.Subject = msg.Header.Get("Subject")
	}
	m.MessageID = msg.Header.Get("Message-ID")
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return err
	}
	m.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	if err := s.sink.keep(m); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "the mail could not be kept; try again"}
	}
	return nil
}

// discardLog drops go-smtp's log of connection errors (clients that hang
// up); the mailer reports its own failures.
type discardLog struct{}

// Printf implements smtp.Logger.
func (discardLog) Printf(string, ...any) {}

// Println implements smtp.Logger.
func (discardLog) Println(...any) {}
