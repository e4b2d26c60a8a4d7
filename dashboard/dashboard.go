// Package dashboard serves a web UI of a running troupe app on the app's
// own HTTP server: the choreography drawn live with rates and errors on its
// edges, the events as they pass, the timeline of one business
// transaction, the dead letters of every subscription with buttons to
// replay or discard them, and how far each subscription is behind.
//
// Turn it on before the app starts:
//
//	app := troupe.New(troupe.Config{Name: "shop"})
//	// ... services and subscriptions ...
//	journal.Install(app) // for the timelines; the dashboard works without it
//	if _, err := dashboard.Install(app); err != nil { ... }
//	app.Main() // logs "dashboard: open http://127.0.0.1:8080/ui/#token=…"
//
// The pages live under /ui/ and their JSON API under /ui/api/; the assets
// are embedded in the binary. docs/dashboard.md describes each panel.
//
// # Safety
//
// The dashboard shows event payloads and can replay and discard dead
// letters, so by default it serves only when the app's HTTP server listens
// on a loopback address (127.0.0.1, ::1; --http localhost:8080 is one) and
// only to requests whose Host header names a loopback host, which keeps web
// pages of other sites out (DNS rebinding). On any other address it answers
// 403 with the fix: pass [AllowRemote] and put it behind something that
// authenticates, or listen on localhost.
//
// Replay and discard also need the admin token, sent as "Authorization:
// Bearer <token>": [Token], else $TROUPE_DASHBOARD_TOKEN, else a random token
// that the app logs with the dashboard's URL when its HTTP server is up. A
// request without the token gets 401, one with a wrong token 403. The
// pages read the token from the URL's fragment (#token=…), which browsers
// never send to the server, and ask for it when they have none.
package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/troupe-go/troupe"
)

// Prefix is the path under which the dashboard serves its pages; its JSON
// API is under Prefix + "api/" and the panels of [WithPanels] under
// Prefix + "panels/<path>/".
const Prefix = "/ui/"

// TokenEnv is the environment variable read for the admin token when
// [Token] is not given.
const TokenEnv = "TROUPE_DASHBOARD_TOKEN"

// Panel is an extra page of the dashboard, for what only one app has (a
// mail sink, a ledger). It gets a tab titled Title that shows, in a frame,
// what Handler serves under /ui/panels/<Path>/. Handler sees the request
// with that prefix removed (the panel's root is "/"), behind the same
// loopback rule as the dashboard; a panel that changes anything should
// check the admin token with [Dashboard.Authorize].
type Panel struct {
	// Title is the tab's label. Required.
	Title string
	// Path names the panel in its URL: lower-case letters, digits and '-',
	// unique among the panels. Required.
	Path string
	// Handler serves the panel. Required.
	Handler http.Handler
}

// Option tunes [Install]. Each documents its default.
type Option func(*config)

type config struct {
	token       string
	tokenSet    bool
	allowRemote bool
	panels      []Panel
}

// Token sets the admin token that replay and discard (and panels that ask
// [Dashboard.Authorize]) require. Default: $TROUPE_DASHBOARD_TOKEN, else a
// random 128-bit token made at Install and logged with the dashboard's URL.
// An empty token is an error at Install.
func Token(token string) Option {
	return func(c *config) { c.token = token; c.tokenSet = true }
}

// AllowRemote lets the dashboard serve when the app listens on an address
// other than loopback (":8080", "0.0.0.0:8080", a LAN address) and accept
// any Host header. Default: off, and the dashboard answers 403 there. Only
// use it behind a proxy or network that authenticates: everyone who reaches
// the dashboard reads every event passing, and the admin token is all that
// guards replay and discard.
func AllowRemote() Option { return func(c *config) { c.allowRemote = true } }

// WithPanels adds app-specific panels; see [Panel]. Default: none. A panel
// without title, handler or a valid path, or two with one path, are an
// error at Install.
func WithPanels(panels ...Panel) Option {
	return func(c *config) { c.panels = append(c.panels, panels...) }
}

// Dashboard is the dashboard of one app, as [Install] made it.
type Dashboard struct {
	app   *troupe.App
	cfg   config
	token string
	// tokenSource says where the token came from, for the log.
	tokenSource string
	stats       *stats
	mux         *http.ServeMux
	brokerCache brokerCache

	mu      sync.Mutex
	streams map[*stream]struct{}
	closed  bool // the app stopped: no new streams
}

// Install adds the dashboard to app: routes under [Prefix] on the app's
// HTTP server (see troupe.App.HandleHTTP; they make the app serve HTTP, on
// localhost:8080 unless Config.HTTPAddr says otherwise), a middleware that
// counts what each subscription handles and publishes for the rates on the
// graph, and start and stop hooks that log the URL and end the live
// streams. Call it before Start, once per app.
//
// It fails, leaving the app unchanged, when an option is invalid (an empty
// token, a bad panel). A route of the app that conflicts with /ui/ makes
// Start fail.
func Install(app *troupe.App, opts ...Option) (*Dashboard, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	d := &Dashboard{app: app, cfg: cfg, streams: make(map[*stream]struct{})}
	switch {
	case cfg.tokenSet && cfg.token == "":
		return nil, errors.New("dashboard: Token(\"\"): the admin token must not be empty; leave the option out for a random one")
	case cfg.tokenSet:
		d.token, d.tokenSource = cfg.token, "option"
	case os.Getenv(TokenEnv) != "":
		d.token, d.tokenSource = os.Getenv(TokenEnv), "$"+TokenEnv
	default:
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		d.token, d.tokenSource = hex.EncodeToString(b[:]), "random"
	}
	seen := make(map[string]bool)
	for _, p := range cfg.panels {
		switch {
		case p.Title == "":
			return nil, fmt.Errorf("dashboard: panel %q has no title", p.Path)
		case !validPath(p.Path):
			return nil, fmt.Errorf("dashboard: panel %q: path %q: use lower-case letters, digits and '-'", p.Title, p.Path)
		case p.Handler == nil:
			return nil, fmt.Errorf("dashboard: panel %q has no handler", p.Title)
		case seen[p.Path]:
			return nil, fmt.Errorf("dashboard: two panels have the path %q: give each its own", p.Path)
		}
		seen[p.Path] = true
	}
	d.stats = newStats(app)
	d.mux = d.routes()
	app.Use(troupe.Middleware{Name: "dashboard", Publish: d.stats.publish, Settled: d.stats.settled})
	app.HandleHTTP(Prefix, http.HandlerFunc(d.serve))
	app.OnStart(func(context.Context) error {
		d.mu.Lock()
		d.closed = false
		d.mu.Unlock()
		return nil
	})
	app.OnReady(func(context.Context) error {
		d.announce()
		return nil
	})
	app.OnStop(func(context.Context) error {
		d.closeStreams()
		return nil
	})
	return d, nil
}

// Token returns the admin token: the one given with [Token], else
// $TROUPE_DASHBOARD_TOKEN, else the random one Install made.
func (d *Dashboard) Token() string { return d.token }

// URL returns the address of the dashboard's pages, such as
// "http://127.0.0.1:8080/ui/", once the app's HTTP server listens; "" before
// and when the app serves no HTTP. It does not carry the token.
func (d *Dashboard) URL() string {
	addr := d.app.HTTPAddr()
	if addr == "" {
		return ""
	}
	return "http://" + browsable(addr) + Prefix
}

// Authorize checks that r carries the admin token ("Authorization: Bearer
// <token>"). It returns nil when it does, an error wrapping
// [ErrUnauthorized] when r has no token, and one wrapping [ErrForbidden]
// when the token is wrong.
func (d *Dashboard) Authorize(r *http.Request) error {
	got, ok := bearer(r)
	switch {
	case !ok:
		return fmt.Errorf("%w: send the admin token as \"Authorization: Bearer <token>\" (it is in the app's log, or $%s)", ErrUnauthorized, TokenEnv)
	case !equalToken(got, d.token):
		return fmt.Errorf("%w: the admin token is wrong", ErrForbidden)
	}
	return nil
}

// Errors of [Dashboard.Authorize]; the API answers them with 401 and 403.
var (
	ErrUnauthorized = errors.New("dashboard: admin token required")
	ErrForbidden    = errors.New("dashboard: forbidden")
)

// announce logs the dashboard's URL (and a random token) once the app's
// HTTP server listens, or why there is no dashboard.
func (d *Dashboard) announce() {
	if d.app.HTTPAddr() == "" {
		d.app.Logger().Warn("dashboard: the app serves no HTTP, so no dashboard (is --http off?)")
		return
	}
	addr := d.app.HTTPAddr()
	log := d.app.Logger()
	if !d.cfg.allowRemote && !loopbackAddr(addr) {
		log.Error("dashboard: refusing to serve: the app listens on "+addr+", which is not a loopback address; listen on localhost (--http localhost:8080) or pass dashboard.AllowRemote() behind an authenticating proxy",
			"addr", addr)
		return
	}
	if d.tokenSource == "random" {
		log.Info("dashboard: open "+d.URL()+"#token="+d.token, "url", d.URL(), "token", d.token)
		return
	}
	log.Info("dashboard: open "+d.URL(), "url", d.URL(), "token_from", d.tokenSource)
}

// browsable turns a listening address into one a browser can open:
// an unspecified IP (0.0.0.0, ::) becomes localhost.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func validPath(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
