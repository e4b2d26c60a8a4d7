package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/troupetest"
)

func TestTopologyIsTheAppsGraph(t *testing.T) {
	s := startShop(t)
	var got, want bytes.Buffer
	res, err := http.Get(s.base + "/ui/api/topology")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET api/topology: %s, %q", res.Status, res.Header.Get("Content-Type"))
	}
	if _, err := io.Copy(&got, res.Body); err != nil {
		t.Fatal(err)
	}
	if err := topology.FromApp(s.app).JSON(&want); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("api/topology is not topology.FromApp's JSON:\n%s\nwant:\n%s", got.String(), want.String())
	}
	var g topology.Graph
	if err := json.Unmarshal(got.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, sv := range g.Services {
		services = append(services, sv.Name)
	}
	if !slices.Equal(services, []string{"notification", "orders", "payment", "shipping"}) {
		t.Errorf("services %v", services)
	}
	if !slices.ContainsFunc(g.Edges, func(e topology.Edge) bool {
		return e.Kind == topology.Compensates && e.From == "subscription:payment.charge" && e.To == "topic:payment_failed"
	}) {
		t.Errorf("no compensates edge from payment.charge to payment_failed in %+v", g.Edges)
	}
}

// sse reads a server-sent event stream.
type sse struct {
	res *http.Response
	sc  *bufio.Scanner
}

type sseEvent struct{ name, data string }

func openSSE(t *testing.T, url string) *sse {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %q: %s", url, res.Status, res.Header.Get("Content-Type"), body)
	}
	s := &sse{res: res, sc: bufio.NewScanner(res.Body)}
	if ev, err := s.next(); err != nil || ev.name != "ready" {
		t.Fatalf("first event of the stream: %+v, %v; want ready", ev, err)
	}
	return s
}

// next returns the next event (comments and retry lines skipped); the
// name of a plain message is "message".
func (s *sse) next() (sseEvent, error) {
	ev := sseEvent{name: "message"}
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if seen {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "event: "):
			ev.name, seen = strings.TrimPrefix(line, "event: "), true
		case strings.HasPrefix(line, "data: "):
			ev.data, seen = ev.data+strings.TrimPrefix(line, "data: "), true
		}
	}
	if err := s.sc.Err(); err != nil {
		return ev, err
	}
	return ev, io.EOF
}

type liveEvent struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Service     string          `json:"service"`
	Correlation string          `json:"correlation"`
	Causation   string          `json:"causation"`
	Data        json.RawMessage `json:"data"`
}

// nextEvent returns the next event message of the stream, failing the test
// at the end of the stream or after the test's patience.
func (s *sse) nextEvent(t *testing.T) liveEvent {
	t.Helper()
	type result struct {
		ev  sseEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		for {
			ev, err := s.next()
			if err != nil || ev.name == "message" {
				ch <- result{ev, err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("event stream ended: %v", r.err)
		}
		var le liveEvent
		if err := json.Unmarshal([]byte(r.ev.data), &le); err != nil {
			t.Fatalf("event %q: %v", r.ev.data, err)
		}
		return le
	case <-time.After(troupetest.DefaultTimeout):
		s.res.Body.Close()
		t.Fatalf("no event on the stream within %s", troupetest.DefaultTimeout)
		return liveEvent{}
	}
}

func TestEventStreamShowsPublishedEvents(t *testing.T) {
	s := startShop(t)
	all := openSSE(t, s.base+"/ui/api/events")
	corr := s.order(t, "1", 10, false)
	ev := all.nextEvent(t)
	if ev.Type != "order_placed.v1" || ev.Topic != "order_placed" || ev.Correlation != corr || ev.Service != "orders" {
		t.Fatalf("first event %+v, want order_placed.v1 of %s from orders", ev, corr)
	}
	var data OrderPlaced
	if err := json.Unmarshal(ev.Data, &data); err != nil || data != (OrderPlaced{ID: "1", Amount: 10}) {
		t.Fatalf("event data %s (%v)", ev.Data, err)
	}
	// The rest of the transaction follows, in causal order.
	next := all.nextEvent(t)
	if next.Type != "payment_done.v1" || next.Causation != ev.ID {
		t.Fatalf("second event %+v, want payment_done.v1 caused by %s", next, ev.ID)
	}
}

func TestEventStreamFilters(t *testing.T) {
	s := startShop(t)
	q := url.Values{"topic": {"shipped,order_cancelled"}, "correlation": {"order-2"}}
	filtered := openSSE(t, s.base+"/ui/api/events?"+q.Encode())
	s.order(t, "1", 10, false)   // shipped, but another transaction
	s.order(t, "2", 5000, false) // declined: order_cancelled
	s.order(t, "3", 10, false)   // shipped, another transaction
	s.order(t, "2", 10, false)   // the same correlation id again, shipped this time
	var got []string
	for len(got) < 2 {
		ev := filtered.nextEvent(t)
		if ev.Correlation != "order-2" || (ev.Topic != "shipped" && ev.Topic != "order_cancelled") {
			t.Fatalf("the filtered stream passed %+v", ev)
		}
		got = append(got, ev.Type)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"order_cancelled.v1", "shipped.v1"}) {
		t.Fatalf("filtered events %v", got)
	}
}

func TestStopEndsOpenStreams(t *testing.T) {
	app := newShop(troupetest.Config(t, troupe.Config{Name: "dashstop", HTTPAddr: "127.0.0.1:0"}))
	d, err := dashboard.Install(app)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stream := openSSE(t, d.URL()+"api/events")
	// A stream never finishes by itself: unless the dashboard ends it, the
	// HTTP server's graceful shutdown waits for it until Stop's context
	// ends, and Stop reports that.
	stopCtx, cancel := context.WithTimeout(ctx, troupetest.DefaultTimeout)
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		t.Fatalf("Stop with a live stream open: %v", err)
	}
	for {
		if _, err := stream.next(); err != nil {
			break // the stream ended
		}
	}
}

func TestTimelineShowsRetriesCompensationAndDeadLetters(t *testing.T) {
	s := startShop(t)
	declined := s.order(t, "big", 5000, false)
	tl := s.waitTimeline(t, declined, func(tl timelineAnswer) (bool, string) {
		return hasStep(tl, "payment.charge", "compensated") && hasStep(tl, "orders.cancel", "handled") &&
			hasStep(tl, "notification.apologize", "handled"), fmt.Sprintf("%+v", tl.Steps)
	})
	if tl.Correlation != declined || tl.Steps[0].Kind != "publish" || tl.Steps[0].Type != "order_placed.v1" || tl.Steps[0].Depth != 0 || tl.Steps[0].OffsetMs != 0 {
		t.Errorf("timeline starts with %+v", tl.Steps[0])
	}
	for _, st := range tl.Steps {
		if st.Type == "payment_failed.v1" && st.Kind == "publish" && (st.Subscription != "payment.charge" || st.Depth < 1) {
			t.Errorf("the compensation's publish %+v is not under payment.charge", st)
		}
	}

	fragile := s.order(t, "vase", 10, true)
	tl = s.waitTimeline(t, fragile, func(tl timelineAnswer) (bool, string) {
		return hasStep(tl, "shipping.ship", "retried") && hasStep(tl, "shipping.ship", "dead-lettered"), fmt.Sprintf("%+v", tl.Steps)
	})
	for _, st := range tl.Steps {
		if st.Subscription == "shipping.ship" && st.Kind == "handle" && !strings.Contains(st.Error, errFragile.Error()) {
			t.Errorf("failed attempt %+v without the handler's error", st)
		}
	}

	var txs struct {
		Transactions []struct {
			Correlation string `json:"correlation"`
			Status      string `json:"status"`
		} `json:"transactions"`
	}
	s.get(t, "/ui/api/transactions", &txs)
	status := map[string]string{}
	for _, tx := range txs.Transactions {
		status[tx.Correlation] = tx.Status
	}
	if status[declined] != "compensated" || status[fragile] != "dead-lettered" {
		t.Errorf("transactions %+v", txs)
	}
	s.get(t, "/ui/api/transactions?status=compensated", &txs)
	if len(txs.Transactions) != 1 || txs.Transactions[0].Correlation != declined {
		t.Errorf("compensated transactions %+v", txs)
	}
}

func TestDeadLettersReplayAndDiscard(t *testing.T) {
	s := startShopWith(t, "127.0.0.1:0", true, dashboard.Token("s3cret"))
	corr := s.order(t, "vase", 10, true)
	id := s.waitDeadLetter(t, corr)

	var ans deadLetterAnswer
	s.get(t, "/ui/api/deadletters", &ans)
	var subs []string
	for _, sub := range ans.Subscriptions {
		subs = append(subs, sub.Subscription)
		if sub.Subscription != "shipping.ship" && len(sub.DeadLetters) > 0 {
			t.Errorf("%s has dead letters: %+v", sub.Subscription, sub.DeadLetters)
		}
		if sub.Subscription == "shipping.ship" {
			dl := sub.DeadLetters[0]
			if sub.Topic != "payment_done.v1" || dl.Type != "payment_done.v1" || dl.Attempts != 2 || dl.Reason != "failed" ||
				!strings.Contains(dl.Error, errFragile.Error()) || !strings.Contains(string(dl.Data), `"fragile":true`) {
				t.Errorf("dead letter %+v of %s", dl, sub.Topic)
			}
		}
	}
	for _, want := range []string{"payment.charge", "shipping.ship", "orders.cancel", "notification.notify", "notification.apologize"} {
		if !slices.Contains(subs, want) {
			t.Errorf("dead letters of %v, not of %s", subs, want)
		}
	}

	replay := "/ui/api/deadletters/shipping.ship/" + url.PathEscape(id) + "/replay"
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusForbidden}} {
		if code, msg := s.call(t, http.MethodPost, replay, c.token, nil); code != c.want {
			t.Errorf("replay with token %q: %d %s, want %d", c.token, code, msg, c.want)
		}
	}
	if got := s.waitDeadLetter(t, corr); got != id {
		t.Fatalf("after refused replays the dead letter is %q, want %q", got, id)
	}
	if code, msg := s.call(t, http.MethodPost, replay, "s3cret", nil); code != http.StatusOK {
		t.Fatalf("replay with the token: %d %s", code, msg)
	}
	s.shipped.WaitCorrelation(t, corr) // the handler succeeds on replay
	eventually(t, "dead letter gone after replay", func() (bool, string) {
		var ans deadLetterAnswer
		s.get(t, "/ui/api/deadletters?subscription=shipping.ship", &ans)
		return len(ans.Subscriptions[0].DeadLetters) == 0, fmt.Sprintf("%+v", ans)
	})
	s.waitTimeline(t, corr, func(tl timelineAnswer) (bool, string) {
		for _, st := range tl.Steps {
			if st.Subscription == "shipping.ship" && st.Outcome == "handled" && st.Replays == 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", tl.Steps)
	})
	if code, _ := s.call(t, http.MethodPost, replay, "s3cret", nil); code != http.StatusNotFound {
		t.Errorf("replaying a replayed dead letter: %d, want 404", code)
	}

	// Discard: the dead letter goes, and nothing is shipped.
	corr2 := s.order(t, "glass", 10, true)
	id2 := s.waitDeadLetter(t, corr2)
	discard := "/ui/api/deadletters/shipping.ship/" + url.PathEscape(id2) + "/discard"
	if code, _ := s.call(t, http.MethodPost, discard, "", nil); code != http.StatusUnauthorized {
		t.Errorf("discard without token: %d, want 401", code)
	}
	if code, msg := s.call(t, http.MethodPost, discard, "s3cret", nil); code != http.StatusOK {
		t.Fatalf("discard: %d %s", code, msg)
	}
	s.get(t, "/ui/api/deadletters?subscription=shipping.ship", &ans)
	if n := len(ans.Subscriptions[0].DeadLetters); n != 0 {
		t.Errorf("%d dead letters after discard", n)
	}
	if code, _ := s.call(t, http.MethodPost, discard, "s3cret", nil); code != http.StatusNotFound {
		t.Errorf("discarding twice: %d, want 404", code)
	}
}

func TestTokenFromEnvironment(t *testing.T) {
	t.Setenv(dashboard.TokenEnv, "from-env")
	s := startShop(t)
	if s.dash.Token() != "from-env" {
		t.Fatalf("Token() = %q", s.dash.Token())
	}
	code, _ := s.call(t, http.MethodPost, "/ui/api/deadletters/shipping.ship/nothing/replay", "from-env", nil)
	if code != http.StatusNotFound {
		t.Fatalf("replay of an unknown dead letter with the env token: %d, want 404", code)
	}
}

func TestRandomTokenDiffers(t *testing.T) {
	t.Setenv(dashboard.TokenEnv, "")
	a, err := dashboard.Install(troupe.New(troupe.Config{Name: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dashboard.Install(troupe.New(troupe.Config{Name: "b"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Token()) != 32 || a.Token() == b.Token() {
		t.Fatalf("random tokens %q and %q", a.Token(), b.Token())
	}
}

func TestStatsCountEdgesLagAndDeadLetters(t *testing.T) {
	s := startShop(t)
	s.order(t, "1", 10, false)
	s.order(t, "big", 5000, false)
	s.order(t, "vase", 10, true)
	s.waitDeadLetter(t, "order-vase")
	type edge struct {
		From, To, Kind string
		Count, Errors  int64
		Rate           float64
	}
	var st struct {
		Subscriptions []struct {
			Subscription string
			Handled      int64
			Failed       int64
			Retried      int64
			DeadLettered int64
			Compensated  int64
			Lag          *int64
			LagError     string
			DeadLetters  *int
		}
		Edges []edge
	}
	eventually(t, "counts of the three orders", func() (bool, string) {
		s.get(t, "/ui/api/stats", &st)
		for _, sub := range st.Subscriptions {
			if sub.Subscription == "notification.apologize" && sub.Handled == 1 {
				for _, sub := range st.Subscriptions {
					if sub.Subscription == "notification.notify" && sub.Handled == 1 {
						return true, ""
					}
				}
			}
		}
		return false, fmt.Sprintf("%+v", st)
	})
	find := func(from, to, kind string) edge {
		for _, e := range st.Edges {
			if e.From == from && e.To == to && e.Kind == kind {
				return e
			}
		}
		t.Fatalf("no edge %s -%s-> %s in %+v", from, kind, to, st.Edges)
		return edge{}
	}
	for _, c := range []struct {
		from, to, kind string
		count, errors  int64
	}{
		{"service:orders", "topic:order_placed", "publishes", 3, 0},
		// The declined payment is compensated: the handling succeeds.
		{"topic:order_placed", "subscription:payment.charge", "delivers", 3, 0},
		{"subscription:payment.charge", "topic:payment_done", "emits", 2, 0},
		{"subscription:payment.charge", "topic:payment_failed", "compensates", 1, 0},
		{"topic:payment_done", "subscription:shipping.ship", "delivers", 3, 2},
		{"subscription:shipping.ship", "dead-letters:shipping.ship", "dead-letters", 1, 0},
		{"subscription:payment.charge", "dead-letters:payment.charge", "dead-letters", 0, 0},
	} {
		e := find(c.from, c.to, c.kind)
		if e.Count != c.count || e.Errors != c.errors || (c.count > 0 && e.Rate <= 0) {
			t.Errorf("edge %s -%s-> %s: count %d, errors %d, rate %g; want %d, %d", c.from, c.kind, c.to, e.Count, e.Errors, e.Rate, c.count, c.errors)
		}
	}
	for _, sub := range st.Subscriptions {
		if sub.Lag == nil {
			t.Errorf("%s: no lag (%s)", sub.Subscription, sub.LagError)
		}
		want := 0
		if sub.Subscription == "shipping.ship" {
			want = 1
		}
		if sub.DeadLetters == nil || *sub.DeadLetters != want {
			t.Errorf("%s: dead letters %v, want %d", sub.Subscription, sub.DeadLetters, want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	s := startShop(t, dashboard.Token("s3cret"))
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		method, path, token string
		want                int
		says                string
	}{
		{"GET", "/ui/api/nothing", "", 404, "no API endpoint"},
		{"POST", "/ui/api/topology", "", 405, "use GET"},
		{"DELETE", "/ui/api/stats", "", 405, "use GET"},
		{"GET", "/ui/api/deadletters/shipping.ship/x/replay", "", 405, "use POST"},
		{"GET", "/ui/api/deadletters?subscription=nobody.nothing", "", 404, "shipping.ship"},
		{"GET", "/ui/api/deadletters?limit=0", "", 400, "limit"},
		{"GET", "/ui/api/deadletters?limit=many", "", 400, "limit"},
		{"GET", "/ui/api/deadletters?limit=101", "", 400, "limit"},
		{"GET", "/ui/api/events?topic=nothing", "", 400, "order_placed"},
		{"GET", "/ui/api/events?topic=shipped,nothing", "", 400, "nothing"},
		{"GET", "/ui/api/events?correlation=", "", 400, "no correlation id"},
		{"GET", "/ui/api/events?correlation=a%00b", "", 400, "control"},
		{"GET", "/ui/api/timeline/" + long, "", 400, "at most 256"},
		{"GET", "/ui/api/timeline/a%0Ab", "", 400, "control"},
		{"GET", "/ui/api/timeline/no-such-order", "", 404, "no journal entries"},
		{"GET", "/ui/api/transactions?status=bogus", "", 400, "status"},
		{"POST", "/ui/api/deadletters/nobody.nothing/x/replay", "s3cret", 404, "no subscription"},
		{"POST", "/ui/api/deadletters/nobody.nothing/x/replay", "", 401, "token"},
		{"POST", "/ui/api/deadletters/shipping.ship/no-such-id/replay", "s3cret", 404, "no dead letter"},
		{"POST", "/ui/api/deadletters/shipping.ship/no-such-id/discard", "s3cret", 404, "no dead letter"},
		{"POST", "/ui/api/deadletters/shipping.ship/no-such-id/discard", "S3CRET", 403, "wrong"},
	} {
		code, msg := s.call(t, c.method, c.path, c.token, nil)
		if code != c.want || !strings.Contains(msg, c.says) {
			t.Errorf("%s %s: %d %q, want %d saying %q", c.method, c.path, code, msg, c.want, c.says)
		}
	}
	// A token sent some other way than as a bearer token is no token.
	req, _ := http.NewRequest(http.MethodPost, s.base+"/ui/api/deadletters/shipping.ship/x/replay", nil)
	req.Header.Set("Authorization", "Basic czNjcmV0Og==")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("basic auth: %s, WWW-Authenticate %q", res.Status, res.Header.Get("WWW-Authenticate"))
	}
}

func TestLoopbackRule(t *testing.T) {
	t.Run("host header", func(t *testing.T) {
		s := startShop(t)
		for _, host := range []string{"evil.example", "evil.example:80", "10.1.2.3"} {
			req, _ := http.NewRequest(http.MethodGet, s.base+"/ui/api/info", nil)
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "refusing host") {
				t.Errorf("Host %s: %s %s", host, res.Status, body)
			}
		}
		for _, host := range []string{"localhost", "localhost:1234", "127.0.0.1", "[::1]:80", "app.localhost"} {
			req, _ := http.NewRequest(http.MethodGet, s.base+"/ui/api/info", nil)
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("Host %s: %s", host, res.Status)
			}
		}
	})
	t.Run("all interfaces", func(t *testing.T) {
		s := startShopOn(t, "0.0.0.0:0")
		for _, path := range []string{"/ui/", "/ui/api/info"} {
			res, err := http.Get(s.base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "AllowRemote") {
				t.Errorf("GET %s on 0.0.0.0: %s %s", path, res.Status, body)
			}
		}
		// The app's own routes are not the dashboard's business.
		s.order(t, "1", 10, false)
	})
	t.Run("allowed", func(t *testing.T) {
		s := startShopOn(t, "0.0.0.0:0", dashboard.AllowRemote())
		req, _ := http.NewRequest(http.MethodGet, s.base+"/ui/api/info", nil)
		req.Host = "dashboard.example:8080"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("AllowRemote on 0.0.0.0: %s", res.Status)
		}
	})
}

func TestPageAndAssets(t *testing.T) {
	s := startShop(t)
	for _, c := range []struct{ path, ctype, has string }{
		{"/ui/", "text/html", `src="assets/app.js"`},
		{"/ui/assets/app.js", "text/javascript", "EventSource"},
		{"/ui/assets/style.css", "text/css", ".graph"},
	} {
		res, err := http.Get(s.base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) ||
			!strings.Contains(string(body), c.has) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %s %q CSP %q", c.path, res.Status, res.Header.Get("Content-Type"), res.Header.Get("Content-Security-Policy"))
		}
	}
	res, err := http.Get(s.base + "/ui/assets/nothing.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: %s", res.Status)
	}
	// /ui without the slash leads to the page.
	res, err = http.Get(s.base + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/ui/" {
		t.Errorf("GET /ui: %s at %s", res.Status, res.Request.URL)
	}
}

func TestPanels(t *testing.T) {
	mail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "mail sink at %s", r.URL.Path)
	})
	s := startShop(t, dashboard.WithPanels(dashboard.Panel{Title: "Mail", Path: "mail", Handler: mail}))
	var in struct {
		App    string
		Panels []struct{ Title, Path, URL string }
	}
	s.get(t, "/ui/api/info", &in)
	if in.App != "dashtest" || len(in.Panels) != 1 || in.Panels[0].URL != "/ui/panels/mail/" || in.Panels[0].Title != "Mail" {
		t.Fatalf("info %+v", in)
	}
	res, err := http.Get(s.base + "/ui/panels/mail/inbox")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "mail sink at /inbox" {
		t.Fatalf("panel answered %s %q", res.Status, body)
	}
}

func TestInstallRejectsBadOptions(t *testing.T) {
	h := http.NotFoundHandler()
	for _, c := range []struct {
		opt  dashboard.Option
		says string
	}{
		{dashboard.Token(""), "must not be empty"},
		{dashboard.WithPanels(dashboard.Panel{Path: "mail", Handler: h}), "no title"},
		{dashboard.WithPanels(dashboard.Panel{Title: "Mail", Path: "Mail Sink", Handler: h}), "lower-case"},
		{dashboard.WithPanels(dashboard.Panel{Title: "Mail", Path: "", Handler: h}), "lower-case"},
		{dashboard.WithPanels(dashboard.Panel{Title: "Mail", Path: "mail"}), "no handler"},
		{dashboard.WithPanels(dashboard.Panel{Title: "A", Path: "a", Handler: h}, dashboard.Panel{Title: "B", Path: "a", Handler: h}), "two panels"},
	} {
		app := troupe.New(troupe.Config{Name: "bad"})
		d, err := dashboard.Install(app, c.opt)
		if err == nil || d != nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Install: %v, %v; want an error saying %q", d, err, c.says)
		}
	}
}

// syncBuffer is a log destination safe for the app's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsTheURLWithTheToken(t *testing.T) {
	t.Setenv(dashboard.TokenEnv, "")
	for _, c := range []struct {
		addr string
		opts []dashboard.Option
		want func(d *dashboard.Dashboard) string
	}{
		{"127.0.0.1:0", nil, func(d *dashboard.Dashboard) string { return "dashboard: open " + d.URL() + "#token=" + d.Token() }},
		{"127.0.0.1:0", []dashboard.Option{dashboard.Token("given")}, func(d *dashboard.Dashboard) string { return "dashboard: open " + d.URL() + `" url=` }},
		{"0.0.0.0:0", nil, func(*dashboard.Dashboard) string { return "dashboard: refusing to serve" }},
	} {
		var logs syncBuffer
		app := newShop(troupetest.Config(t, troupe.Config{Name: "dashlog", HTTPAddr: c.addr,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
		d, err := dashboard.Install(app, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		troupetest.Start(t, app)
		want := c.want(d)
		eventually(t, "the dashboard's log line", func() (bool, string) {
			return strings.Contains(logs.String(), want), logs.String()
		})
		if len(c.opts) > 0 && strings.Contains(logs.String(), "given") {
			t.Errorf("a token given as an option is logged:\n%s", logs.String())
		}
	}
}

func TestStatsShowUndeclaredEmits(t *testing.T) {
	type Ping struct{ N int }
	ping := troupe.NewTopic[Ping]("ping", 1)
	pong := troupe.NewTopic[Ping]("pong", 1)
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "dashobserved", HTTPAddr: "127.0.0.1:0"}))
	a := app.Service("a").Publishes(ping, pong)
	// The handler publishes pong without troupe.Emits(pong): the
	// declaration has no edge from a.echo to pong.
	troupe.Subscribe(a, ping, "echo", func(ctx context.Context, ev troupe.Event[Ping]) error {
		return troupe.Publish(ctx, pong, ev.Data)
	})
	d, err := dashboard.Install(app)
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	if err := troupe.Publish(app.Context(t.Context()), ping, Ping{N: 1}); err != nil {
		t.Fatal(err)
	}
	s := &testShop{app: app, dash: d, base: strings.TrimSuffix(d.URL(), "/ui/")}
	eventually(t, "an observed edge", func() (bool, string) {
		var st struct {
			Edges []struct {
				From, To, Kind string
				Count          int64
			}
		}
		s.get(t, "/ui/api/stats", &st)
		for _, e := range st.Edges {
			if e.Kind == "observed" && e.From == "subscription:a.echo" && e.To == "topic:pong" && e.Count == 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.Edges)
	})
}
