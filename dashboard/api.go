package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// brokerTimeout bounds the broker queries of one API request.
const brokerTimeout = 5 * time.Second

// maxDeadLetters is the most dead letters listed per subscription, and the
// count on the graph's dead-letter stores stops there ("100+").
const maxDeadLetters = 100

// maxCorrelation bounds a correlation id in a request.
const maxCorrelation = 256

func (d *Dashboard) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", d.serveIndex)
	mux.HandleFunc("GET "+Prefix+"assets/{file}", d.serveAsset)
	mux.HandleFunc("GET "+Prefix+"api/info", d.apiInfo)
	mux.HandleFunc("GET "+Prefix+"api/topology", d.apiTopology)
	mux.HandleFunc("GET "+Prefix+"api/stats", d.apiStats)
	mux.HandleFunc("GET "+Prefix+"api/transactions", d.apiTransactions)
	mux.HandleFunc("GET "+Prefix+"api/events", d.apiEvents)
	mux.HandleFunc("GET "+Prefix+"api/timeline/{correlation}", d.apiTimeline)
	mux.HandleFunc("GET "+Prefix+"api/deadletters", d.apiDeadLetters)
	mux.HandleFunc("POST "+Prefix+"api/deadletters/{subscription}/{id}/replay", d.apiReplay)
	mux.HandleFunc("POST "+Prefix+"api/deadletters/{subscription}/{id}/discard", d.apiDiscard)
	mux.HandleFunc(Prefix+"api/", d.apiNotFound)
	for _, p := range d.cfg.panels {
		prefix := Prefix + "panels/" + p.Path
		mux.Handle(prefix+"/", http.StripPrefix(prefix, p.Handler))
	}
	return mux
}

// serve is the dashboard's one route on the app's server: it applies the
// loopback rule, then routes.
func (d *Dashboard) serve(w http.ResponseWriter, r *http.Request) {
	if err := d.admit(r); err != nil {
		if strings.HasPrefix(r.URL.Path, Prefix+"api/") {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintln(w, err)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	d.mux.ServeHTTP(w, r)
}

// admit applies the loopback rule; see the package documentation.
func (d *Dashboard) admit(r *http.Request) error {
	if d.cfg.allowRemote {
		return nil
	}
	if addr := d.app.HTTPAddr(); addr != "" && !loopbackAddr(addr) {
		return fmt.Errorf("dashboard: refusing to serve: the app listens on %s, not on a loopback address; listen on localhost (--http localhost:8080), or pass dashboard.AllowRemote() and put an authenticating proxy in front", addr)
	}
	if !loopbackHost(r.Host) {
		return fmt.Errorf("dashboard: refusing host %q: the dashboard answers to localhost, 127.0.0.1 and [::1] only (dashboard.AllowRemote() lifts this)", r.Host)
	}
	return nil
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return loopbackName(host)
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return loopbackName(strings.Trim(host, "[]"))
}

func loopbackName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiError is the body of every error the API answers.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// apiNotFound answers paths under api/ that no route takes: 405 when the
// path exists with another method, 404 otherwise.
func (d *Dashboard) apiNotFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := d.mux.Handler(probe); pattern != "" && pattern != Prefix+"api/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s; see docs/dashboard.md", r.URL.Path))
}

// info is the answer of GET api/info.
type info struct {
	App      string      `json:"app"`
	Started  bool        `json:"started"`
	Since    time.Time   `json:"since"`
	Features featureSet  `json:"features"`
	Panels   []panelInfo `json:"panels"`
}

type featureSet struct {
	// Events: the transport can tap (live event stream).
	Events bool `json:"events"`
	// Lag: the transport tells subscription lag.
	Lag bool `json:"lag"`
	// Journal: the transport keeps journals (timelines); whether some
	// process writes one shows when a timeline is asked for.
	Journal bool `json:"journal"`
}

type panelInfo struct {
	Title string `json:"title"`
	Path  string `json:"path"`
	URL   string `json:"url"`
}

func (d *Dashboard) apiInfo(w http.ResponseWriter, _ *http.Request) {
	tr := d.app.Transport()
	_, tap := tr.(transport.Tapper)
	_, lag := tr.(transport.Lagger)
	_, jr := tr.(transport.Journaler)
	in := info{App: d.app.Name(), Started: tr != nil, Since: d.stats.start.UTC(),
		Features: featureSet{Events: tap, Lag: lag, Journal: jr}, Panels: []panelInfo{}}
	for _, p := range d.cfg.panels {
		in.Panels = append(in.Panels, panelInfo{Title: p.Title, Path: p.Path, URL: Prefix + "panels/" + p.Path + "/"})
	}
	writeJSON(w, http.StatusOK, in)
}

func (d *Dashboard) apiTopology(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := topology.FromApp(d.app).JSON(&b); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// subStats is one subscription in GET api/stats.
type subStats struct {
	ID           string  `json:"id"`
	Subscription string  `json:"subscription"`
	Topic        string  `json:"topic"`
	Attempts     int64   `json:"attempts"`
	Handled      int64   `json:"handled"`
	Failed       int64   `json:"failed"`
	Retried      int64   `json:"retried"`
	DeadLettered int64   `json:"deadLettered"`
	Compensated  int64   `json:"compensated"`
	Rate         float64 `json:"rate"`
	ErrorRate    float64 `json:"errorRate"`
	MeanMillis   float64 `json:"meanMs"`
	// Lag is nil when the transport cannot tell, LagError says why.
	Lag      *int64 `json:"lag"`
	LagError string `json:"lagError,omitempty"`
	// DeadLetters counts the stored dead letters, up to maxDeadLetters
	// (DeadLettersMore then says there are more); nil when the broker did
	// not say, DeadLettersError says why.
	DeadLetters      *int   `json:"deadLetters"`
	DeadLettersMore  bool   `json:"deadLettersMore,omitempty"`
	DeadLettersError string `json:"deadLettersError,omitempty"`
	Breaker          string `json:"breaker"`
}

// edgeStats is one edge of the graph in GET api/stats, with its counts;
// Kind "observed" marks a publish this process saw that the declaration
// has no edge for (a handler publishing a topic it does not declare in
// Emits).
type edgeStats struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Kind   string  `json:"kind"`
	Count  int64   `json:"count"`
	Rate   float64 `json:"rate"`
	Errors int64   `json:"errors"`
}

type statsAnswer struct {
	Since         time.Time   `json:"since"`
	Now           time.Time   `json:"now"`
	Window        string      `json:"window"`
	Subscriptions []subStats  `json:"subscriptions"`
	Edges         []edgeStats `json:"edges"`
}

func (d *Dashboard) apiStats(w http.ResponseWriter, r *http.Request) {
	g := topology.FromApp(d.app)
	now := time.Now()
	ans := statsAnswer{Since: d.stats.start.UTC(), Now: now.UTC(), Window: window.String(), Subscriptions: []subStats{}, Edges: []edgeStats{}}
	subs := d.subscriptions()
	d.stats.mu.Lock()
	for _, sub := range subs {
		c := d.stats.subs[sub.String()]
		if c == nil {
			c = &subCounts{}
		}
		st := subStats{ID: topology.SubscriptionID(sub.String()), Subscription: sub.String(), Topic: sub.Topic(),
			Attempts: c.attempts.total, Handled: c.handled.total, Failed: c.failed.total, Retried: c.retried.total,
			DeadLettered: c.deadLettered.total, Compensated: c.compensated.total,
			Rate: c.attempts.rate(now, d.stats.start), ErrorRate: c.failed.rate(now, d.stats.start),
			Breaker: sub.BreakerState().String()}
		if c.attempts.total > 0 {
			st.MeanMillis = float64(c.busy.Microseconds()) / 1000 / float64(c.attempts.total)
		}
		ans.Subscriptions = append(ans.Subscriptions, st)
	}
	declared := make(map[pubKey]bool)
	for _, e := range g.Edges {
		es := edgeStats{From: e.From, To: e.To, Kind: string(e.Kind)}
		sub := strings.TrimPrefix(e.From, "subscription:")
		c := d.stats.subs[sub]
		if c == nil {
			c = &subCounts{}
		}
		switch e.Kind {
		case topology.Publishes, topology.Emits, topology.Compensates:
			k := pubKey{e.From, strings.TrimPrefix(e.To, "topic:")}
			declared[k] = true
			if p := d.stats.pubs[k]; p != nil {
				es.Count, es.Rate, es.Errors = p.ok.total, p.ok.rate(now, d.stats.start), p.failed.total
			}
		case topology.Delivers:
			c = d.stats.subs[strings.TrimPrefix(e.To, "subscription:")]
			if c != nil {
				es.Count, es.Rate, es.Errors = c.attempts.total, c.attempts.rate(now, d.stats.start), c.failed.total
			}
		case topology.HandledBy:
			es.Count, es.Rate, es.Errors = c.handled.total, c.handled.rate(now, d.stats.start), c.failed.total
		case topology.DeadLetters:
			es.Count, es.Rate = c.deadLettered.total, c.deadLettered.rate(now, d.stats.start)
		}
		ans.Edges = append(ans.Edges, es)
	}
	var observed []edgeStats
	for k, p := range d.stats.pubs {
		if declared[k] {
			continue
		}
		observed = append(observed, edgeStats{From: k.from, To: topology.TopicID(k.topic), Kind: "observed",
			Count: p.ok.total, Rate: p.ok.rate(now, d.stats.start), Errors: p.failed.total})
	}
	d.stats.mu.Unlock()
	sortEdges(observed) // the graph's edges come sorted already
	ans.Edges = append(ans.Edges, observed...)

	d.brokerCounts(r.Context(), subs, ans.Subscriptions)
	writeJSON(w, http.StatusOK, ans)
}

func sortEdges(es []edgeStats) {
	slices.SortFunc(es, func(a, b edgeStats) int {
		return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
}

// brokerCacheTTL is how long the broker's answers for api/stats are
// reused: every open page asks every two seconds, and listing dead letters
// is not free on every broker.
const brokerCacheTTL = time.Second

// brokerCache holds the broker's last answers for api/stats.
type brokerCache struct {
	mu  sync.Mutex // held while asking, so that pages share one query
	at  time.Time
	out []subStats // only the broker's fields are set
}

// brokerCounts fills in the lag and dead-letter counts of subs, from the
// cache when it is fresh, else asking the broker about all of them at once.
func (d *Dashboard) brokerCounts(ctx context.Context, subs []*troupe.Subscription, out []subStats) {
	c := &d.brokerCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= brokerCacheTTL || len(c.out) != len(out) {
		fresh := make([]subStats, len(out))
		d.askBroker(ctx, subs, fresh)
		c.at, c.out = time.Now(), fresh
	}
	for i, b := range c.out {
		out[i].Lag, out[i].LagError = b.Lag, b.LagError
		out[i].DeadLetters, out[i].DeadLettersMore, out[i].DeadLettersError = b.DeadLetters, b.DeadLettersMore, b.DeadLettersError
	}
}

func (d *Dashboard) askBroker(ctx context.Context, subs []*troupe.Subscription, out []subStats) {
	tr := d.app.Transport()
	if tr == nil {
		for i := range out {
			out[i].LagError, out[i].DeadLettersError = "app not started", "app not started"
		}
		return
	}
	lagger, canLag := tr.(transport.Lagger)
	ctx, cancel := context.WithTimeout(ctx, brokerTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Go(func() {
			if !canLag {
				out[i].LagError = "the transport does not tell lag"
				return
			}
			n, err := lagger.Lag(ctx, transport.SubscriptionRef{Service: sub.Service().Name(), Name: sub.Name()})
			if err != nil {
				out[i].LagError = err.Error()
				return
			}
			out[i].Lag = &n
		})
		wg.Go(func() {
			dls, err := d.app.DeadLetters(ctx, sub.String(), maxDeadLetters+1)
			if err != nil {
				out[i].DeadLettersError = err.Error()
				return
			}
			n := min(len(dls), maxDeadLetters)
			out[i].DeadLetters, out[i].DeadLettersMore = &n, len(dls) > maxDeadLetters
		})
	}
	wg.Wait()
}

func (d *Dashboard) subscriptions() []*troupe.Subscription {
	var out []*troupe.Subscription
	for _, s := range d.app.Services() {
		out = append(out, s.Subscriptions()...)
	}
	return out
}

func (d *Dashboard) subscription(ref string) *troupe.Subscription {
	for _, s := range d.subscriptions() {
		if s.String() == ref {
			return s
		}
	}
	return nil
}

func (d *Dashboard) apiTransactions(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	switch status {
	case "", "ok", "retried", "dead-lettered", "compensated", "recovered":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status %q: use ok, retried, dead-lettered, compensated or recovered", status))
		return
	}
	d.stats.mu.Lock()
	all := d.stats.txs.list()
	d.stats.mu.Unlock()
	out := []txSummary{}
	for _, t := range all {
		if status == "" || t.Status == status {
			out = append(out, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"transactions": out})
}

// step is one row of a timeline: a publish or a handling attempt.
type step struct {
	Kind         string  `json:"kind"` // "publish" or "handle"
	Time         string  `json:"time"`
	OffsetMillis float64 `json:"offsetMs"`
	Millis       float64 `json:"durationMs"`
	Event        string  `json:"event"`
	Causation    string  `json:"causation,omitempty"`
	Type         string  `json:"type"`
	Service      string  `json:"service,omitempty"`
	Subscription string  `json:"subscription,omitempty"`
	Attempt      int     `json:"attempt,omitempty"`
	Replays      int     `json:"replays,omitempty"`
	Outcome      string  `json:"outcome"`
	Error        string  `json:"error,omitempty"`
	Depth        int     `json:"depth"`
}

type timeline struct {
	Correlation string  `json:"correlation"`
	Start       string  `json:"start"`
	Millis      float64 `json:"durationMs"`
	Steps       []step  `json:"steps"`
}

// apiTimeline answers a business transaction's steps from the journal,
// in the journal's causal order, each with its offset from the first.
func (d *Dashboard) apiTimeline(w http.ResponseWriter, r *http.Request) {
	corr := r.PathValue("correlation")
	if err := checkCorrelation(corr); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), brokerTimeout)
	defer cancel()
	entries, err := journal.Trace(ctx, d.app, corr)
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no journal entries for correlation id %q (entries are written a moment after each step, and kept for the journal's MaxAge)", corr))
		return
	case errors.Is(err, transport.ErrNoJournal):
		writeError(w, http.StatusNotFound, "no process of this app writes a journal: add journal.Install(app) before Start to see timelines")
		return
	case errors.Is(err, journal.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, err.Error())
		return
	case errors.Is(err, troupe.ErrNotStarted):
		writeError(w, http.StatusServiceUnavailable, "the app is not started")
		return
	case err != nil:
		writeError(w, http.StatusBadGateway, "reading the journal: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, timelineOf(corr, entries))
}

// timelineOf turns journal entries into the timeline the page draws. It
// is the dashboard's one use of the journal's Entry.
func timelineOf(corr string, entries []journal.Entry) timeline {
	tl := timeline{Correlation: corr, Steps: make([]step, 0, len(entries))}
	if len(entries) == 0 {
		return tl
	}
	start, end := entries[0].Time, entries[0].Time
	for _, e := range entries {
		if e.Time.Before(start) {
			start = e.Time
		}
		if t := e.Time.Add(e.Duration); t.After(end) {
			end = t
		}
	}
	tl.Start, tl.Millis = start.UTC().Format(time.RFC3339Nano), millis(end.Sub(start))
	for _, e := range entries {
		tl.Steps = append(tl.Steps, step{
			Kind: string(e.Kind), Time: e.Time.UTC().Format(time.RFC3339Nano),
			OffsetMillis: millis(e.Time.Sub(start)), Millis: millis(e.Duration),
			Event: e.EventID, Causation: e.CausationID, Type: e.Type, Service: e.Service,
			Subscription: e.Subscription, Attempt: e.Attempt, Replays: e.Replays,
			Outcome: string(e.Outcome), Error: e.Error, Depth: e.Depth,
		})
	}
	return tl
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func checkCorrelation(c string) error {
	switch {
	case c == "":
		return errors.New("no correlation id")
	case len(c) > maxCorrelation:
		return fmt.Errorf("correlation id of %d bytes: at most %d", len(c), maxCorrelation)
	case strings.ContainsFunc(c, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }):
		return fmt.Errorf("correlation id %q has control characters", c)
	}
	return nil
}

// deadLetter is one dead letter in GET api/deadletters.
type deadLetter struct {
	ID           string          `json:"id"`
	EventID      string          `json:"event"`
	Type         string          `json:"type"`
	Source       string          `json:"source"`
	Correlation  string          `json:"correlation"`
	Reason       string          `json:"reason"`
	Error        string          `json:"error"`
	Attempts     int             `json:"attempts"`
	Replays      int             `json:"replays"`
	FirstAttempt time.Time       `json:"firstAttempt"`
	LastAttempt  time.Time       `json:"lastAttempt"`
	DeadAt       time.Time       `json:"deadAt"`
	Data         json.RawMessage `json:"data,omitempty"`
	DataText     string          `json:"dataText,omitempty"`
}

type subDeadLetters struct {
	Subscription string       `json:"subscription"`
	Topic        string       `json:"topic"`
	DeadLetters  []deadLetter `json:"deadLetters"`
	More         bool         `json:"more"`
	Error        string       `json:"error,omitempty"`
}

// apiDeadLetters lists the dead letters of every subscription, or of the
// one ?subscription= names, up to ?limit= (default and most
// maxDeadLetters) each.
func (d *Dashboard) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := maxDeadLetters
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeadLetters {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: a number from 1 to %d", s, maxDeadLetters))
			return
		}
		limit = n
	}
	subs := d.subscriptions()
	if ref := q.Get("subscription"); ref != "" {
		sub := d.subscription(ref)
		if sub == nil {
			writeError(w, http.StatusNotFound, d.noSubscription(ref))
			return
		}
		subs = []*troupe.Subscription{sub}
	}
	if d.app.Transport() == nil {
		writeError(w, http.StatusServiceUnavailable, "the app is not started")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), brokerTimeout)
	defer cancel()
	out := make([]subDeadLetters, len(subs))
	var wg sync.WaitGroup
	for i, sub := range subs {
		out[i] = subDeadLetters{Subscription: sub.String(), Topic: sub.Topic(), DeadLetters: []deadLetter{}}
		wg.Go(func() {
			dls, err := d.app.DeadLetters(ctx, sub.String(), limit+1)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			if len(dls) > limit {
				dls, out[i].More = dls[:limit], true
			}
			for _, dl := range dls {
				out[i].DeadLetters = append(out[i].DeadLetters, deadLetterOf(dl))
			}
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

// maxData bounds the event data the API shows.
const maxData = 16 << 10

func deadLetterOf(dl troupe.DeadLetter) deadLetter {
	out := deadLetter{ID: dl.ID, EventID: dl.Message.ID, Type: dl.Message.Type, Source: dl.Message.Source,
		Correlation: dl.Message.CorrelationID, Reason: string(dl.Reason), Error: dl.Error,
		Attempts: dl.Attempts, Replays: dl.Replays, FirstAttempt: dl.FirstAttempt, LastAttempt: dl.LastAttempt, DeadAt: dl.DeadAt}
	out.Data, out.DataText = dataOf(dl.Message.Data)
	return out
}

// dataOf returns event data as JSON when it is JSON and small enough, else
// as text, cut to maxData.
func dataOf(b []byte) (json.RawMessage, string) {
	if len(b) <= maxData && json.Valid(b) {
		return json.RawMessage(b), ""
	}
	if len(b) > maxData {
		return nil, strings.ToValidUTF8(string(b[:maxData]), "?") + "…"
	}
	return nil, strings.ToValidUTF8(string(b), "?")
}

func (d *Dashboard) noSubscription(ref string) string {
	var names []string
	for _, s := range d.subscriptions() {
		names = append(names, s.String())
	}
	return fmt.Sprintf("no subscription %q: name it as service.subscription; the app has %s", ref, strings.Join(names, ", "))
}

func (d *Dashboard) apiReplay(w http.ResponseWriter, r *http.Request) {
	d.adminAction(w, r, "replayed", d.app.Replay)
}

func (d *Dashboard) apiDiscard(w http.ResponseWriter, r *http.Request) {
	d.adminAction(w, r, "discarded", d.app.Discard)
}

// adminAction checks the token and the names, then runs act on one dead
// letter.
func (d *Dashboard) adminAction(w http.ResponseWriter, r *http.Request, done string, act func(ctx context.Context, sub, id string) error) {
	if err := d.Authorize(r); err != nil {
		if errors.Is(err, ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="troupe dashboard"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	ref, id := r.PathValue("subscription"), r.PathValue("id")
	if d.subscription(ref) == nil {
		writeError(w, http.StatusNotFound, d.noSubscription(ref))
		return
	}
	if d.app.Transport() == nil {
		writeError(w, http.StatusServiceUnavailable, "the app is not started")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), brokerTimeout)
	defer cancel()
	err := act(ctx, ref, id)
	switch {
	case errors.Is(err, transport.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("subscription %s has no dead letter %q (replayed or discarded already?)", ref, id))
		return
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	d.app.Logger().Info("dashboard: dead letter "+done, "subscription", ref, "id", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"subscription": ref, "id": id, "status": done})
}
