// Package mailsink is the user-management example's stand-in for a mail
// server: a small SMTP server (on github.com/emersion/go-smtp) that accepts
// every mail and keeps it in memory, and a service whose route shows what
// arrived, as MailCatcher did for the seed.
//
//	GET /mail            every mail received, oldest first
//	GET /mail?to=ADDR    the mails to one recipient
//
// Recipients at the domain [RejectDomain] are refused with a permanent
// error (550), to show what the mailer does with a mail that cannot be
// delivered.
package mailsink

import (
	"context"
	"fmt"
	"io"
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
}

// Sink is an SMTP server that keeps the mails it receives. Its mails
// survive Stop and Start, so a test can take the server down and bring it
// back. It is safe for concurrent use.
type Sink struct {
	mu      sync.Mutex
	addr    string
	srv     *smtp.Server
	mails   []Mail
	arrived chan struct{} // closed and replaced when a mail arrives
}

// New returns a sink that will listen on addr (host:port; port 0 picks a
// free port at the first Start, which later Starts reuse).
func New(addr string) *Sink {
	return &Sink{addr: addr, arrived: make(chan struct{})}
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

// Mails returns the mails received so far, oldest first; to, when not
// empty, keeps only those to that recipient.
func (s *Sink) Mails(to string) []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Mail
	for _, m := range s.mails {
		if to == "" || containsFold(m.To, to) {
			out = append(out, m)
		}
	}
	return out
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

func (s *Sink) keep(m Mail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.ID = len(s.mails) + 1
	s.mails = append(s.mails, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// Register declares the sink's service on app, with the route GET /mail.
// sink is started and stopped with the app; pass nil in a process that does
// not run the sink, which then only declares it.
func Register(app *troupe.App, sink *Sink) *troupe.Service {
	svc := app.Service(ServiceName)
	if sink != nil {
		app.OnStart(func(context.Context) error { return sink.Start() })
		app.OnStop(func(context.Context) error { return sink.Stop() })
	}
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
		mails := sink.Mails(to)
		if mails == nil {
			mails = []Mail{}
		}
		httpjson.WriteJSON(w, http.StatusOK, struct {
			SMTP  string `json:"smtp"`
			Count int    `json:"count"`
			Mails []Mail `json:"mails"`
		}{sink.Addr(), len(mails), mails})
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
	s.sink.keep(m)
	return nil
}

// discardLog drops go-smtp's log of connection errors (clients that hang
// up); the mailer reports its own failures.
type discardLog struct{}

// Printf implements smtp.Logger.
func (discardLog) Printf(string, ...any) {}

// Println implements smtp.Logger.
func (discardLog) Println(...any) {}
