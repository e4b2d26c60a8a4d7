package troupe

import "net/http"

// Service is one microservice of an app: a name, the topics it publishes,
// its subscriptions and its HTTP routes. Create it with [App.Service]. In a
// process started with --services, only the listed services consume and
// serve HTTP; all are still declared, so events for the others are kept for
// the processes that run them.
type Service struct {
	app       *App
	name      string
	publishes []AnyTopic
	subs      []*Subscription
	routes    []route
}

type route struct {
	pattern string
	h       http.Handler
}

// Name returns the service's name.
func (s *Service) Name() string { return s.name }

// Publishes declares the topics this service publishes, making them known to
// the app: subscribing to a topic that no service publishes is an error at
// start. Publishing from a handler of this service to a topic it did not
// declare works but logs a warning, because the declared graph is how people
// see the flow. It returns s for chaining.
func (s *Service) Publishes(topics ...AnyTopic) *Service {
	s.publishes = append(s.publishes, topics...)
	return s
}

// Topics returns the topics the service declares it publishes.
func (s *Service) Topics() []AnyTopic { return append([]AnyTopic(nil), s.publishes...) }

// Subscriptions returns the service's subscriptions in declaration order.
func (s *Service) Subscriptions() []*Subscription { return append([]*Subscription(nil), s.subs...) }

// Routes returns the patterns of the service's HTTP routes.
func (s *Service) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.pattern
	}
	return out
}

// Handle registers an HTTP handler on the app's HTTP server, with a pattern
// as http.ServeMux takes it ("POST /orders", "GET /orders/{id}"). The route
// is served only by processes that run this service. Inside the handler,
// r.Context() carries the app, so [Publish] works with it directly.
func (s *Service) Handle(pattern string, h http.Handler) {
	s.routes = append(s.routes, route{pattern: pattern, h: h})
}

// HandleFunc is [Service.Handle] for a function.
func (s *Service) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	s.Handle(pattern, http.HandlerFunc(h))
}
