package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/topology"
)

// browserDir holds the browser script and its locked npm dependencies
// (playwright-core, which drives a browser it does not download).
var browserDir = filepath.Join("testdata", "browser")

// chromiumPath is Debian's chromium; CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// needBrowser returns node's path, or skips the test (fails it under CI)
// when node, chromium or the script's node_modules are missing.
func needBrowser(t *testing.T) string {
	t.Helper()
	missing := func(what, fix string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is missing: %s", what, fix)
		}
		t.Skipf("%s is missing, so the dashboard is not tried in a browser: %s", what, fix)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", "apt-get install nodejs npm")
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		missing(chromiumPath(), "apt-get install chromium (or set CHROMIUM to a Chromium binary)")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		missing("playwright-core", "run npm ci in dashboard/testdata/browser")
	}
	return node
}

// TestBrowser loads the dashboard of the test shop in chromium and uses it
// as a person would: the graph shows every service, topic and
// subscription with the compensation drawn apart, the live stream shows a
// filtered transaction, the timelines of a compensated and a dead-lettered
// transaction show their failures, replaying the dead letter from its list
// makes the transaction finish, and an app's own panel shows in its tab. With TROUPE_SCREENSHOTS=1 it saves
// docs/img/dashboard.png and docs/img/timeline.png.
func TestBrowser(t *testing.T) {
	node := needBrowser(t)
	mail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>sent mail</title><p id="sink">no mail sent to %s</p>`, html.EscapeString(r.URL.Path))
	})
	s := startShop(t, dashboard.WithPanels(dashboard.Panel{Title: "Sent mail", Path: "mail", Handler: mail}))
	for _, id := range []string{"1001", "1002", "1003"} {
		s.order(t, id, 25, false)
	}
	failed := s.order(t, "1004", 5000, false)
	deadLettered := s.order(t, "1005", 40, true)
	s.order(t, "1006", 30, false)
	s.waitDeadLetter(t, deadLettered)
	s.waitTimeline(t, failed, func(tl timelineAnswer) (bool, string) {
		return hasStep(tl, "payment.charge", "compensated") && hasStep(tl, "notification.apologize", "handled"), fmt.Sprintf("%+v", tl.Steps)
	})
	s.waitTimeline(t, deadLettered, func(tl timelineAnswer) (bool, string) {
		return hasStep(tl, "shipping.ship", "dead-lettered"), fmt.Sprintf("%+v", tl.Steps)
	})

	g := topology.FromApp(s.app)
	var expect struct {
		Services      []string `json:"services"`
		Topics        []string `json:"topics"`
		Subscriptions []string `json:"subscriptions"`
		Failed        string   `json:"failed"`
		DeadLettered  string   `json:"deadLettered"`
		Subscription  string   `json:"subscription"`
	}
	for _, sv := range g.Services {
		expect.Services = append(expect.Services, sv.Name)
	}
	for _, tp := range g.Topics {
		expect.Topics = append(expect.Topics, tp.Name)
	}
	for _, sub := range g.Subscriptions {
		expect.Subscriptions = append(expect.Subscriptions, sub.Service+"."+sub.Name)
	}
	expect.Failed, expect.DeadLettered, expect.Subscription = failed, deadLettered, "shipping.ship"
	exp, _ := json.Marshal(expect)

	shots := ""
	if os.Getenv("TROUPE_SCREENSHOTS") == "1" {
		dir, err := filepath.Abs(filepath.Join("..", "docs", "img"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		shots = dir
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(),
		"DASHBOARD_URL="+s.base+"/ui/#token="+s.dash.Token(),
		"APP_URL="+s.base,
		"EXPECT="+string(exp),
		"SCREENSHOT_DIR="+shots,
		"CHROMIUM="+chromiumPath())
	out, err := cmd.CombinedOutput()
	t.Logf("browser:\n%s", out)
	if err != nil {
		t.Fatalf("the dashboard failed in the browser: %v", err)
	}

	// What the browser did happened: the dead letter is gone and the
	// replayed event was handled.
	var ans deadLetterAnswer
	s.get(t, "/ui/api/deadletters?subscription=shipping.ship", &ans)
	if n := len(ans.Subscriptions[0].DeadLetters); n != 0 {
		t.Errorf("%d dead letters left after the browser replayed", n)
	}
	s.waitTimeline(t, deadLettered, func(tl timelineAnswer) (bool, string) {
		return hasStep(tl, "notification.notify", "handled"), fmt.Sprintf("%+v", tl.Steps)
	})
}
