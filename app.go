package troupe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Config declares an app and how it runs. Every field has a default; the
// standard command line of [App.Main] overrides the run settings.
type Config struct {
	// Name identifies the app. It namespaces the app's streams, queues and
	// event sources on the broker, so two apps can share one broker. Required:
	// a letter followed by letters, digits, '_' or '-'.
	Name string
	// Broker selects the transport by URL: its scheme names the driver
	// that opens it (see transport.RegisterScheme), and the driver's
	// package documents its options. Default: $TROUPE_BROKER, else
	// "embedded:", an in-process NATS JetStream server storing its data in
	// DataDir (package natsjs, which also takes "nats://host:4222" for an
	// external NATS server with JetStream); "amqp://user:pass@host:5672/vhost"
	// uses RabbitMQ (package rabbitmq). An unknown scheme fails Start with
	// an error wrapping transport.ErrUnknownScheme. Flag --broker.
	Broker string
	// DataDir is where the embedded broker keeps its files. Default:
	// $TROUPE_DATA, else ".troupe/<name>" under the working directory.
	// Flag --data.
	DataDir string
	// Services lists the services this process runs; the others are declared
	// but neither consume nor serve HTTP here. Default: all. Flag --services.
	Services []string
	// HTTPAddr is where the services' HTTP routes are served. Default
	// "localhost:8080" when a running service has routes; "off" disables the
	// server. Flag --http.
	HTTPAddr string
	// ShutdownTimeout bounds how long Stop waits for running handlers and
	// HTTP requests before cancelling them; their events are then redelivered.
	// Default 30s.
	ShutdownTimeout time.Duration
	// Logger receives the app's logs. Default slog.Default().
	Logger *slog.Logger
	// Transport, when set, is used instead of opening Broker; the app does
	// not close it. For tests and custom setups.
	Transport transport.Transport
}

// App holds the services, topics and subscriptions of one choreography and
// runs them. Declare everything, then call [App.Main] (a program's main) or
// [App.Start] / [App.Run] (tests, embedding).
type App struct {
	cfg        Config
	log        *slog.Logger
	sourceBase string

	services []*Service
	topics   []AnyTopic // declared with App.Topics

	mu         sync.Mutex
	started    bool
	stopped    bool
	tr         transport.Transport
	ownsTr     bool
	consumers  []transport.Consumer
	httpSrv    *http.Server
	httpAddr   string
	httpDone   chan error
	known      map[string]topicInfo         // topic name → declaration
	publishes  map[*Service]map[string]bool // service → topics it declared
	newConns   map[net.Conn]struct{}        // HTTP connections without a request yet
	undeclared sync.Map                     // "service.sub/topic" → UndeclaredEmit seen at run time
	running    map[string]bool              // services running in this process

	middleware []Middleware
	routes     []route                   // the app's own HTTP routes
	live       atomic.Pointer[liveState] // the publish path, set once Start connected
	closing    atomic.Bool               // Stop began: publishes fail
	onStart    []func(context.Context) error
	onStop     []func(context.Context) error
	onReady    []func(context.Context) error
	flagFns    []func(*flag.FlagSet)
	startedFns bool          // the OnStart functions all ran
	stopCh     chan struct{} // closed when Stop begins
	client     bool          // StartClient: connect, run nothing
	replyOnce  sync.Once
	replyBox   *replyBox // request/reply taps, made on first use
}

// New declares an app. Nothing connects until Start.
func New(cfg Config) *App {
	a := &App{cfg: cfg, stopCh: make(chan struct{})}
	a.log = cfg.Logger
	if a.log == nil {
		a.log = slog.Default()
	}
	a.sourceBase = transport.Source(cfg.Name, "")
	return a
}

// Name returns the app's name.
func (a *App) Name() string { return a.cfg.Name }

// Service declares a service of the app and returns it. Names are unique
// within the app; a duplicate is reported at start.
func (a *App) Service(name string) *Service {
	s := &Service{app: a, name: name}
	a.services = append(a.services, s)
	return s
}

// Services returns the declared services in declaration order.
func (a *App) Services() []*Service { return slices.Clone(a.services) }

// Topics declares topics that are published from outside the app's services
// (another system, a script), so that services may subscribe to them.
func (a *App) Topics(topics ...AnyTopic) {
	a.topics = append(a.topics, topics...)
}

// ExternalTopics returns the topics declared with [App.Topics]: published
// from outside the app's services.
func (a *App) ExternalTopics() []AnyTopic { return slices.Clone(a.topics) }

// Context returns ctx carrying the app, for [Publish] from code that is not
// a handler or an HTTP route of a service (a script, a test, a timer).
func (a *App) Context(ctx context.Context) context.Context {
	if s := scopeOf(ctx); s != nil && s.app == nil {
		c := &scope{app: a, correlation: s.correlation, idemKey: s.idemKey}
		return withScope(ctx, c)
	}
	return withScope(ctx, &scope{app: a})
}

// Transport returns the transport of a started app, or nil.
func (a *App) Transport() transport.Transport {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tr
}

// HTTPAddr returns the address the HTTP server listens on, once started, or
// "" when the app serves no HTTP.
func (a *App) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

// Validate checks the declaration and returns every mistake found, each with
// the fix. Start calls it.
func (a *App) Validate() error {
	_, _, err := a.validate()
	return err
}

func (a *App) validate() (map[string]topicInfo, map[*Service]map[string]bool, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.cfg.Name == "" {
		add("app has no name: set troupe.Config{Name: \"shop\"}")
	} else if !transport.ValidName(a.cfg.Name) {
		add("app name %q: use a letter followed by letters, digits, '_' or '-'", a.cfg.Name)
	}
	known := make(map[string]topicInfo)
	declare := func(t AnyTopic, by string) {
		ti := t.info()
		if ti.err != nil {
			add("%w (declared by %s)", ti.err, by)
			return
		}
		prev, ok := known[ti.name]
		switch {
		case !ok:
			known[ti.name] = ti
		case prev.version != ti.version:
			add("topic %q is declared with version %d and with version %d: one program publishes and reads one version of a topic", ti.name, prev.version, ti.version)
		case prev.goType != ti.goType:
			add("topic %q is declared with types %s and %s: declare it once and share the variable", ti.name, prev.goType, ti.goType)
		}
	}
	for _, t := range a.topics {
		declare(t, "app.Topics")
	}
	publishes := make(map[*Service]map[string]bool)
	seen := make(map[string]bool)
	for _, s := range a.services {
		if !transport.ValidName(s.name) {
			add("service name %q: use a letter followed by letters, digits, '_' or '-'", s.name)
		}
		if seen[s.name] {
			add("service %q is declared twice: call app.Service(%q) once and keep the result", s.name, s.name)
		}
		seen[s.name] = true
		publishes[s] = make(map[string]bool)
		for _, t := range s.publishes {
			declare(t, "service "+s.name)
			publishes[s][t.Name()] = true
		}
	}
	for _, s := range a.services {
		names := make(map[string]bool)
		for _, sub := range s.subs {
			if !transport.ValidName(sub.name) {
				add("subscription name %q of service %s: use a letter followed by letters, digits, '_' or '-'", sub.name, s.name)
			}
			if names[sub.name] {
				add("service %s has two subscriptions named %q: give each subscription of a service its own name", s.name, sub.name)
			}
			names[sub.name] = true
			if sub.topic.err != nil {
				add("%w (subscribed by %s)", sub.topic.err, sub)
				continue
			}
			for _, e := range sub.cfg.emits {
				if ei := e.info(); ei.err == nil && !publishes[s][ei.name] {
					add("subscription %s emits topic %q, which its service %s does not publish: add .Publishes(%s) to service %s", sub, ei.name, s.name, goIdent(ei.name), s.name)
				}
			}
			if c := sub.cfg.compensate; c != nil {
				ci := c.topic.info()
				switch {
				case ci.err != nil:
					add("%w (OnFailure of %s)", ci.err, sub)
				case !publishes[s][ci.name]:
					add("subscription %s compensates with topic %q, which its service %s does not publish: add .Publishes(%s) to service %s", sub, ci.name, s.name, goIdent(ci.name), s.name)
				}
				if c.evType != sub.topic.goType {
					add("subscription %s handles %s, but its OnFailure builds from Event[%s]: take Event[%s]", sub, sub.topic.goType, c.evType, sub.topic.goType)
				}
			}
			ti, ok := known[sub.topic.name]
			switch {
			case !ok:
				add("subscription %s listens to topic %q, which no service publishes: add .Publishes(%s) to the publishing service, or app.Topics(...) if it comes from outside", sub, sub.topic.name, goIdent(sub.topic.name))
			case ti.goType != sub.topic.goType:
				add("subscription %s reads topic %q as %s, but it is declared as %s: share the topic variable", sub, sub.topic.name, sub.topic.goType, ti.goType)
			case ti.version != sub.topic.version:
				add("subscription %s reads topic %q version %d, but it is declared with version %d", sub, sub.topic.name, sub.topic.version, ti.version)
			}
		}
	}
	for _, name := range a.cfg.Services {
		if !seen[name] {
			add("--services names %q, but the app has no such service; it has: %s", name, strings.Join(a.serviceNames(), ", "))
		}
	}
	return known, publishes, errors.Join(errs...)
}

func (a *App) serviceNames() []string {
	var out []string
	for _, s := range a.services {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out
}

// goIdent turns a topic name into the Go identifier a user would likely
// have given its variable, for error messages.
func goIdent(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if r == '_' || r == '-' {
			up = true
			continue
		}
		if up {
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// StartClient starts the app as a client of its broker, for operator
// tools and commands (see [RegisterCommand]): it validates the declaration,
// connects and declares the subscriptions as Start does, but runs no
// service (nothing is consumed, no HTTP is served, no OnStart function
// runs). Publish, Request, DeadLetters, Replay and Discard work; Stop
// disconnects. broker and dataDir, when not empty, replace Config.Broker
// and Config.DataDir. The embedded broker keeps its files for one process
// at a time: reach a running embedded app through its listener
// (embedded:?listen=ADDR, then nats://ADDR here).
func (a *App) StartClient(ctx context.Context, broker, dataDir string) error {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return errors.New("troupe: app already started")
	}
	a.client = true
	if broker != "" {
		a.cfg.Broker = broker
	}
	if dataDir != "" {
		a.cfg.DataDir = dataDir
	}
	a.mu.Unlock()
	return a.Start(ctx)
}

// Start validates the declaration, connects to the broker, declares every
// subscription of the app (also those of services that run elsewhere, so
// their events are kept), starts consuming for the services this process
// runs, and serves their HTTP routes. It returns once all of that runs. Stop
// undoes it.
func (a *App) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return errors.New("troupe: app already started")
	}
	a.started = true
	a.mu.Unlock()

	known, publishes, err := a.validate()
	if err != nil {
		return fmt.Errorf("troupe: app %q is not declared right:\n%w", a.cfg.Name, indent(err))
	}
	running := make(map[string]bool)
	for _, s := range a.services {
		running[s.name] = !a.client && (len(a.cfg.Services) == 0 || slices.Contains(a.cfg.Services, s.name))
	}
	a.mu.Lock()
	a.running = running
	a.mu.Unlock()

	tr := a.cfg.Transport
	owns := false
	if tr == nil {
		tr, err = a.openBroker(ctx)
		if err != nil {
			return err
		}
		owns = true
	}
	a.mu.Lock()
	a.tr, a.ownsTr = tr, owns
	mws := slices.Clone(a.middleware)
	a.mu.Unlock()
	ls := &liveState{known: known, publishes: publishes, pub: a.chainPublish(tr, mws)}
	for _, m := range mws {
		if m.Encode != nil {
			ls.encode = append(ls.encode, m.Encode)
		}
	}
	a.live.Store(ls)
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), a.shutdownTimeout())
			defer cancel()
			_ = a.Stop(cctx)
		}
	}()

	if td, ok := tr.(transport.TopicDeclarer); ok {
		topics := slices.Sorted(maps.Keys(known))
		if err := td.DeclareTopics(ctx, topics...); err != nil {
			return fmt.Errorf("troupe: declare topics: %w", err)
		}
	}
	var specs []transport.Subscription
	for _, s := range a.services {
		for _, sub := range s.subs {
			sub.cfg.spec.Ordered = sub.topicRef.Ordered()
			specs = append(specs, sub.cfg.spec)
		}
	}
	if err := tr.Declare(ctx, specs...); err != nil {
		return fmt.Errorf("troupe: declare subscriptions: %w", err)
	}
	a.mu.Lock()
	onStart := slices.Clone(a.onStart)
	if a.client {
		onStart = nil // a client runs nothing beside the app
	}
	// From here on, Stop runs the OnStop functions, also when an OnStart
	// fails, so components that did start are stopped.
	a.startedFns = true
	a.mu.Unlock()
	for _, fn := range onStart {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("troupe: start: %w", err)
		}
	}
	for _, s := range a.services {
		if !running[s.name] {
			continue
		}
		for _, sub := range s.subs {
			sub.settled = settledFuncs(sub, mws)
			c, err := tr.Consume(ctx, sub.cfg.spec, sub.consume(chainHandle(sub, mws)))
			if err != nil {
				return fmt.Errorf("troupe: start subscription %s: %w", sub, err)
			}
			a.mu.Lock()
			a.consumers = append(a.consumers, c)
			a.mu.Unlock()
		}
	}
	if a.client {
		a.log.Debug("troupe app connected as a client", "app", a.cfg.Name, "broker", transport.RedactURL(a.brokerURL()))
		return nil
	}
	if err := a.startHTTP(); err != nil {
		return err
	}
	a.log.Info("troupe app started", "app", a.cfg.Name, "broker", transport.RedactURL(a.brokerURL()),
		"services", strings.Join(a.runningNames(), ","), "http", a.HTTPAddr())
	a.mu.Lock()
	onReady := slices.Clone(a.onReady)
	a.mu.Unlock()
	for _, fn := range onReady {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("troupe: ready: %w", err)
		}
	}
	return nil
}

func indent(err error) error {
	return errors.New("  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

func (a *App) runningNames() []string {
	var out []string
	for _, s := range a.services {
		if a.running[s.name] {
			out = append(out, s.name)
		}
	}
	return out
}

func (a *App) shutdownTimeout() time.Duration {
	if a.cfg.ShutdownTimeout > 0 {
		return a.cfg.ShutdownTimeout
	}
	return 30 * time.Second
}

func (a *App) startHTTP() error {
	mux := http.NewServeMux()
	n := 0
	a.mu.Lock()
	appRoutes := slices.Clone(a.routes)
	a.mu.Unlock()
	for _, r := range appRoutes {
		if err := registerRoute(mux, r.pattern, a.wrapRoute(nil, r.h)); err != nil {
			return fmt.Errorf("troupe: app HTTP route %q: %w", r.pattern, err)
		}
		n++
	}
	for _, s := range a.services {
		if !a.running[s.name] {
			continue
		}
		for _, r := range s.routes {
			if err := registerRoute(mux, r.pattern, a.wrapRoute(s, r.h)); err != nil {
				return fmt.Errorf("troupe: service %s: HTTP route %q: %w", s.name, r.pattern, err)
			}
			n++
		}
	}
	addr := a.cfg.HTTPAddr
	if addr == "off" || (n == 0 && addr == "") {
		return nil
	}
	if addr == "" {
		addr = "localhost:8080"
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("troupe: HTTP server: %w (pass --http with a free address, or --http off)", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: a.trackConn}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	a.mu.Lock()
	a.httpSrv, a.httpAddr, a.httpDone = srv, ln.Addr().String(), done
	a.mu.Unlock()
	return nil
}

// trackConn remembers connections that have not sent a request yet: Stop
// closes them, because http.Server.Shutdown waits up to five seconds for
// them (browsers and pooling clients open such connections ahead of use).
func (a *App) trackConn(c net.Conn, state http.ConnState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if state == http.StateNew {
		if a.newConns == nil {
			a.newConns = make(map[net.Conn]struct{})
		}
		a.newConns[c] = struct{}{}
		return
	}
	delete(a.newConns, c)
}

// registerRoute turns ServeMux's panics on bad or conflicting patterns into
// errors.
func registerRoute(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

func (a *App) wrapRoute(s *Service, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := withScope(r.Context(), &scope{app: a, service: s})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Stop stops the HTTP server, lets running handlers finish (until ctx ends,
// after which their events are redelivered later), and closes the broker
// connection the app opened. Events published and confirmed before Stop are
// never lost.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	if a.stopped || !a.started {
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	a.closing.Store(true)
	close(a.stopCh)
	srv, consumers, tr, owns := a.httpSrv, a.consumers, a.tr, a.ownsTr
	a.mu.Unlock()

	var errs []error
	if srv != nil {
		srv.SetKeepAlivesEnabled(false)
		a.mu.Lock()
		for c := range a.newConns {
			_ = c.Close()
		}
		a.mu.Unlock()
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("troupe: stop HTTP: %w", err))
		}
	}
	var wg sync.WaitGroup
	errCh := make(chan error, len(consumers))
	for _, c := range consumers {
		wg.Go(func() { errCh <- c.Stop(ctx) })
	}
	wg.Wait()
	close(errCh)
	for err := range errCh {
		if err != nil {
			errs = append(errs, err)
		}
	}
	a.mu.Lock()
	onStop, ranStart := slices.Clone(a.onStop), a.startedFns
	a.mu.Unlock()
	a.replies().close()
	if ranStart {
		for i := len(onStop) - 1; i >= 0; i-- {
			if err := onStop[i](ctx); err != nil {
				errs = append(errs, fmt.Errorf("troupe: stop: %w", err))
			}
		}
	}
	if tr != nil && owns {
		if err := tr.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("troupe: close broker: %w", err))
		}
	}
	level := slog.LevelInfo
	if a.client {
		level = slog.LevelDebug // a command's connection, not an app run
	}
	a.log.Log(context.Background(), level, "troupe app stopped", "app", a.cfg.Name)
	return errors.Join(errs...)
}

// Run starts the app, blocks until ctx ends, then stops it within the
// shutdown timeout.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	var httpErr error
	select {
	case <-ctx.Done():
	case httpErr = <-a.httpDoneChan():
		httpErr = fmt.Errorf("troupe: HTTP server stopped: %w", httpErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.shutdownTimeout())
	defer cancel()
	return errors.Join(httpErr, a.Stop(sctx))
}

func (a *App) httpDoneChan() <-chan error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpDone // nil when no server: blocks forever in select
}

// checkPublish rejects a topic the app does not know or the publishing
// service does not declare, and records (and logs once) a topic a handler
// publishes without declaring it with Emits.
func (a *App) checkPublish(s *scope, t topicInfo) error {
	ls := a.live.Load()
	if ls == nil {
		return fmt.Errorf("publish %s: %w", transport.WireType(t.name, t.version), ErrNotStarted)
	}
	known, publishes := ls.known, ls.publishes
	ti, ok := known[t.name]
	if !ok {
		return fmt.Errorf("publish %s: %w: add .Publishes(%s) to the service that publishes it", transport.WireType(t.name, t.version), ErrUndeclaredTopic, goIdent(t.name))
	}
	if ti.goType != t.goType || ti.version != t.version {
		return fmt.Errorf("publish %s: %w: the app declares %s as %s", transport.WireType(t.name, t.version), ErrUndeclaredTopic, transport.WireType(ti.name, ti.version), ti.goType)
	}
	if s.service != nil && !publishes[s.service][t.name] {
		return fmt.Errorf("publish %s: %w: service %s does not declare it: add .Publishes(%s) to service %s",
			transport.WireType(t.name, t.version), ErrUndeclaredTopic, s.service.name, goIdent(t.name), s.service.name)
	}
	if s.sub != nil && s.salt == "" && !slices.ContainsFunc(s.sub.cfg.emits, func(e AnyTopic) bool { return e.Name() == t.name }) {
		key := s.sub.String() + "/" + t.name
		if _, dup := a.undeclared.LoadOrStore(key, UndeclaredEmit{Subscription: s.sub.String(), Topic: t.name}); !dup {
			a.log.Warn("handler publishes a topic its subscription does not declare; add it to troupe.Emits so the topology shows the edge",
				"subscription", s.sub.String(), "topic", t.name)
		}
	}
	return nil
}

// UndeclaredEmit is a topic a subscription's handler published without
// declaring it with [Emits]: an edge of the choreography that only shows
// at run time.
type UndeclaredEmit struct {
	Subscription string // "service.name"
	Topic        string // topic name
}

// UndeclaredEmits returns the undeclared edges this process has seen so
// far, sorted; see [UndeclaredEmit]. The topology and the dashboard draw
// them apart from the declared ones.
func (a *App) UndeclaredEmits() []UndeclaredEmit {
	var out []UndeclaredEmit
	a.undeclared.Range(func(_, v any) bool {
		out = append(out, v.(UndeclaredEmit))
		return true
	})
	slices.SortFunc(out, func(x, y UndeclaredEmit) int {
		return strings.Compare(x.Subscription+"/"+x.Topic, y.Subscription+"/"+y.Topic)
	})
	return out
}

func (a *App) publish(ctx context.Context, msgs []*transport.Message) error {
	ls := a.live.Load()
	if ls == nil {
		return ErrNotStarted
	}
	if a.closing.Load() {
		return fmt.Errorf("troupe: publish: %w", transport.ErrClosed)
	}
	return ls.pub(ctx, msgs)
}

// liveState is what the publish path reads, fixed once Start has
// connected: one atomic load per publish rather than the app's lock.
type liveState struct {
	known     map[string]topicInfo         // topic name → declaration
	publishes map[*Service]map[string]bool // service → topics it declared
	pub       PublishFunc                  // middlewares around the transport
	encode    []func(context.Context, []*transport.Message)
}

func (a *App) brokerURL() string {
	if a.cfg.Transport != nil {
		return "(custom transport)"
	}
	if a.cfg.Broker != "" {
		return a.cfg.Broker
	}
	if b := os.Getenv("TROUPE_BROKER"); b != "" {
		return b
	}
	return "embedded:"
}

func (a *App) dataDir() string {
	if a.cfg.DataDir != "" {
		return a.cfg.DataDir
	}
	if d := os.Getenv("TROUPE_DATA"); d != "" {
		return d
	}
	return filepath.Join(".troupe", a.cfg.Name)
}

// Logger returns a logger that writes through the app's logger:
// Config.Logger, else the one App.Main builds from --log-format and
// --log-level, else slog.Default(). It follows the app's logger even when
// taken before Main replaced it, so components may keep it from the time
// they are declared.
func (a *App) Logger() *slog.Logger { return slog.New(appHandler{a: a}) }

// appHandler writes through the app's current logger, applying the
// attributes and groups added to it on the way.
type appHandler struct {
	a   *App
	ops []func(slog.Handler) slog.Handler
}

func (h appHandler) current() slog.Handler {
	hh := h.a.log.Handler()
	for _, op := range h.ops {
		hh = op(hh)
	}
	return hh
}

func (h appHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.log.Handler().Enabled(ctx, l)
}

func (h appHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h appHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return appHandler{a: h.a, ops: append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithAttrs(as) })}
}

func (h appHandler) WithGroup(name string) slog.Handler {
	return appHandler{a: h.a, ops: append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithGroup(name) })}
}
