//go:build unix

package usermgmt_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
)

// TestExternalSMTPServer sends the welcome mail to an SMTP server nobody
// here wrote: Python's aiosmtpd (Debian's python3-aiosmtpd), run as its own
// process, storing what it receives in a Maildir.
func TestExternalSMTPServer(t *testing.T) {
	python, err := findAiosmtpd()
	needService(t, "Python with aiosmtpd (apt install python3-aiosmtpd)", err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	maildir := filepath.Join(t.TempDir(), "Maildir")
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", addr, "-c", "aiosmtpd.handlers.Mailbox", maildir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	poll(t, "aiosmtpd to listen on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("aiosmtpd exited:\n%s", out.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	s := startSystem(t, &usermgmt.Options{SMTPAddr: addr}, nil)
	u := register(t, s, "Margaret Hamilton", "margaret@example.com", http.StatusCreated, "Prefer: wait=10")
	if u.WelcomeMail.Status != "sent" {
		t.Fatalf("welcome_mail = %+v, want sent", u.WelcomeMail)
	}
	files, err := filepath.Glob(filepath.Join(maildir, "new", "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("aiosmtpd's Maildir holds %v (%v), want one mail\naiosmtpd output:\n%s", files, err, out.String())
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != u.Email || to[0].Name != u.Name {
		t.Errorf("To: %v (%v), want %s <%s>", to, err, u.Name, u.Email)
	}
	var sent mailer.WelcomeMailSentV1
	if err := json.Unmarshal(u.WelcomeMail.Event.Data, &sent); err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get("Message-ID"); id == "" || id != sent.MessageID {
		t.Errorf("Message-ID %q, want the one welcome_mail_sent reports, %q", id, sent.MessageID)
	}
	if n := len(s.sink.Mails("")); n != 0 {
		t.Errorf("the embedded sink got %d mails; --smtp should have sent them elsewhere", n)
	}
}

// findAiosmtpd returns a Python interpreter that has aiosmtpd: the
// python3 on PATH, or Debian's /usr/bin/python3 (where python3-aiosmtpd
// installs it) when PATH leads to another Python.
func findAiosmtpd() (string, error) {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import aiosmtpd").Run() == nil {
			return path, nil
		}
	}
	return "", errors.New("no python3 can import aiosmtpd")
}
