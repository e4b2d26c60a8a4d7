package troupe

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/troupe-go/troupe/transport"
)

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
