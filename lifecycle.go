package troupe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/troupe-go/troupe/transport"
)

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

func (a *App) runningNames() []string {
	var out []string
	for _, s := range a.services {
		if a.running[s.name] {
			out = append(out, s.name)
		}
	}
	return out
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

// OnStart registers a function that Start runs once the broker is
// connected and subscriptions are declared, before consuming begins, in the
// order registered. An error stops Start, which then returns it. Components
// that run beside the app (an outbox relay, a scheduler) start here; they
// use ctx only for the start itself and should run their background work
// until the matching OnStop. Call it before Start.
func (a *App) OnStart(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onStart = append(a.onStart, fn)
}

// OnStop registers a function that Stop runs after the app's consumers and
// HTTP server have stopped and before the broker connection closes, in the
// reverse order of registration. ctx bounds it with the shutdown timeout.
// Its error is joined into Stop's. The OnStop functions run once Start
// has begun running OnStart functions, even if one of those failed: a
// function must cope with its component not having started.
func (a *App) OnStop(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onStop = append(a.onStop, fn)
}

// OnReady registers a function that Start runs last, once the app
// consumes and its HTTP server listens ([App.HTTPAddr] is known), in the
// order registered: the place to print where the app can be reached. An
// error stops Start, which returns it.
func (a *App) OnReady(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onReady = append(a.onReady, fn)
}

// Stopping returns a channel closed when Stop begins, before the HTTP
// server shuts down and the consumers drain: long-lived work such as an
// event stream to a browser ends on it, so that it does not hold up the
// shutdown.
func (a *App) Stopping() <-chan struct{} { return a.stopCh }

// Runs reports whether this process runs the named service: every service
// by default, those of --services (Config.Services) otherwise, none in an
// app started with [App.StartClient]. Like DataDir, ask it once the command
// line is parsed, in OnStart or later.
func (a *App) Runs(service string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.client && (len(a.cfg.Services) == 0 || slices.Contains(a.cfg.Services, service))
}
