package mailsink

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPageShowsMailsNewestFirstEscaped(t *testing.T) {
	s := New("127.0.0.1:0")
	rec := httptest.NewRecorder()
	s.Page().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if body := rec.Body.String(); !strings.Contains(body, "0 mails received") || !strings.Contains(body, "Nothing yet") {
		t.Errorf("empty page:\n%s", body)
	}
	s.keep(Mail{From: "a@x", To: []string{"b@x"}, Subject: "first", Body: "hi", ReceivedAt: time.Now()})
	s.keep(Mail{From: "a@x", To: []string{"c@x", "d@x"}, Subject: "<script>second</script>", Body: "yo", ReceivedAt: time.Now()})
	rec = httptest.NewRecorder()
	s.Page().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "2 mails received") || strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;second") {
		t.Errorf("page:\n%s", body)
	}
	if i, j := strings.Index(body, "second"), strings.Index(body, "first"); i < 0 || j < 0 || i > j {
		t.Errorf("newest mail not first:\n%s", body)
	}
	if !strings.Contains(body, "to c@x, d@x") {
		t.Errorf("recipients not listed:\n%s", body)
	}
}
