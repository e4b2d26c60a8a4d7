package troupe_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// A broker password never shows in an error or a log line, whether the
// broker is unreachable or the URL is wrong.
func TestBrokerPasswordNeverShows(t *testing.T) {
	const secret = "s3cr3t-pa55"
	for _, url := range []string{
		"amqp://guest:" + secret + "@127.0.0.1:1/",
		"nats://troupe:" + secret + "@127.0.0.1:1",
		"amqp://guest:" + secret + "@127.0.0.1:1/%zz", // unparsable vhost
		"bogus://guest:" + secret + "@host",
	} {
		var logs bytes.Buffer
		a := troupe.New(troupe.Config{Name: "creds", Broker: url, HTTPAddr: "off",
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		a.Service("s")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := a.Start(ctx)
		cancel()
		if err == nil {
			_ = a.Stop(context.Background())
			t.Fatalf("%s: started against a closed port", strings.ReplaceAll(url, secret, "…"))
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs show the password:\n%s", logs.String())
		}
		t.Logf("%v", err)
	}
}
