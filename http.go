package troupe

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"
)

// HTTPAddr returns the address the HTTP server listens on, once started, or
// "" when the app serves no HTTP.
func (a *App) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

// HandleHTTP registers an HTTP handler of the app itself (not of one
// service), such as a metrics endpoint or a dashboard. It is served by every
// process of the app that serves HTTP, and its presence makes the app serve
// HTTP on the default address when Config.HTTPAddr is empty. Call it before
// Start.
func (a *App) HandleHTTP(pattern string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.routes = append(a.routes, route{pattern: pattern, h: h})
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
		addr = DefaultHTTPAddr
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

func (a *App) httpDoneChan() <-chan error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpDone // nil when no server: blocks forever in select
}
