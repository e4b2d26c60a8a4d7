package operator_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/operator"
	"github.com/troupe-go/troupe/troupetest"
)

// An app with the operator surface lists its commands in -h, and
// serves the dashboard and the metrics.
func TestInstall(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "operator", HTTPAddr: "127.0.0.1:0"}))
	app.Service("orders").HandleFunc("GET /orders", func(w http.ResponseWriter, _ *http.Request) {})
	if err := operator.Install(app); err != nil {
		t.Fatal(err)
	}
	var usage bytes.Buffer
	if err := app.RunCommand(context.Background(), []string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, cmd := range []string{"graph", "tail", "trace", "dlq", "contract"} {
		if !strings.Contains(usage.String(), "\n  "+cmd) {
			t.Errorf("-h does not list %s:\n%s", cmd, usage.String())
		}
	}
	troupetest.Start(t, app)
	for _, path := range []string{"/ui/", "/metrics"} {
		resp, err := http.Get("http://" + app.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}
