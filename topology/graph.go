// Package topology turns the declaration of a troupe app into data: a graph
// of its services, topics, subscriptions and dead-letter stores, and the
// edges between them (who publishes what, which subscription handles which
// topic, which event leads to which, where failures end up). It renders the
// graph as a Mermaid flowchart, a Graphviz DOT digraph, JSON or an AsyncAPI
// 3.0 document.
//
// Importing the package also adds the graph command to every app binary
// that uses [troupe.App.Main]:
//
//	import _ "github.com/troupe-go/troupe/topology"
//
//	$ shop graph                 # Mermaid (default)
//	$ shop graph --format dot    # Graphviz
//	$ shop graph --format json   # the Graph as JSON
//	$ shop graph --format asyncapi  # AsyncAPI 3.0 (JSON)
//
// The command prints the graph of the declaration and exits; it connects to
// no broker.
package topology

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
)

// Graph is the choreography of one app as data. Every slice is sorted
// (services and topics by name, subscriptions and dead-letter stores by ID,
// edges by kind in the order of the flow — publishes, delivers, handled-by,
// emits, dead-letters, compensates — then from and to), so that renderings
// of the same declaration are byte for byte the same.
//
// Nodes are named by IDs that are unique across kinds:
//
//	service:<name>             a service
//	topic:<name>               a topic
//	subscription:<svc>.<name>  a subscription
//	dead-letters:<svc>.<name>  a subscription's dead-letter store
//	external                   publishers outside the app (App.Topics)
type Graph struct {
	// App is the app's name.
	App string `json:"app"`
	// Services are the app's services.
	Services []Service `json:"services"`
	// Topics are every topic the app declares, subscribes to or emits.
	Topics []Topic `json:"topics"`
	// Subscriptions are the subscriptions of all services.
	Subscriptions []Subscription `json:"subscriptions"`
	// DeadLetters are the dead-letter stores, one per subscription.
	DeadLetters []DeadLetterStore `json:"deadLetters"`
	// Edges connect the nodes above; see [EdgeKind].
	Edges []Edge `json:"edges"`
}

// ExternalID is the node ID of the publishers outside the app: the source
// of the topics declared with [troupe.App.Topics].
const ExternalID = "external"

// Service is a service of the app.
type Service struct {
	// ID is "service:<name>".
	ID string `json:"id"`
	// Name is the service's name.
	Name string `json:"name"`
	// Routes are the service's HTTP route patterns ("POST /orders"), sorted.
	Routes []string `json:"routes"`
	// Publishes are the names of the topics the service declares it
	// publishes, sorted.
	Publishes []string `json:"publishes"`
	// Subscriptions are the IDs of the service's subscriptions, sorted.
	Subscriptions []string `json:"subscriptions"`
}

// Topic is a topic of the app.
type Topic struct {
	// ID is "topic:<name>".
	ID string `json:"id"`
	// Name is the topic's name ("order_placed").
	Name string `json:"name"`
	// Version is the version the app publishes and reads.
	Version int `json:"version"`
	// Versions are every version the app reads: older ones through
	// upcasters (troupe.Upcast), then Version.
	Versions []int `json:"versions"`
	// Ordered reports an ordering key (troupe.OrderBy): each key's events
	// are handled in publish order.
	Ordered bool `json:"ordered,omitempty"`
	// Type is the wire type, "<name>.v<version>".
	Type string `json:"type"`
	// GoType is the Go type of the data as the program spells it
	// ("orders.PlacedV1").
	GoType string `json:"goType"`
	// GoPackage is the import path of GoType's package; "" for unnamed
	// types such as map[string]any.
	GoPackage string `json:"goPackage"`
	// Schema is the JSON Schema of the event data, generated from the Go
	// type by [SchemaOf].
	Schema *Schema `json:"schema"`
	// Publishers are the names of the services that declare the topic with
	// Publishes, sorted, followed by "external" when the app declares it with
	// App.Topics. Empty when nothing declares it (the app does not start).
	Publishers []string `json:"publishers"`
	// External reports that the topic comes from outside the app.
	External bool `json:"external"`
}

// Subscription is a subscription of a service to a topic.
type Subscription struct {
	// ID is "subscription:<service>.<name>".
	ID string `json:"id"`
	// Service is the name of the service that owns it.
	Service string `json:"service"`
	// Name is its name within the service.
	Name string `json:"name"`
	// Topic is the name of the topic it handles.
	Topic string `json:"topic"`
	// Emits are the names of the topics its handler declares it publishes
	// (troupe.Emits), sorted.
	Emits []string `json:"emits"`
	// Compensation is the name of the failure topic it publishes when its
	// handler fails for good (troupe.OnFailure); "" when none.
	Compensation string `json:"compensation,omitempty"`
	// Retry is how its failures are retried.
	Retry Retry `json:"retry"`
	// DeadLetters is the ID of its dead-letter store.
	DeadLetters string `json:"deadLetters"`
}

// Retry is a subscription's retry policy, with defaults filled in.
type Retry struct {
	// MaxAttempts counts the first attempt; after the last, the event is
	// dead-lettered.
	MaxAttempts int `json:"maxAttempts"`
	// MinBackoff is the delay before the second attempt; each further retry
	// doubles it up to MaxBackoff.
	MinBackoff Duration `json:"minBackoff"`
	// MaxBackoff caps the delay between attempts.
	MaxBackoff Duration `json:"maxBackoff"`
	// Deadline bounds one attempt.
	Deadline Duration `json:"deadline"`
}

// Duration is a time.Duration that encodes to JSON as Go writes durations
// ("500ms", "1m0s").
type Duration time.Duration

// String returns the duration as time.Duration writes it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes the duration as its String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes a duration written by MarshalText.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// DeadLetterStore is where a subscription's failed events end up, to be
// inspected, replayed or discarded.
type DeadLetterStore struct {
	// ID is "dead-letters:<service>.<name>".
	ID string `json:"id"`
	// Subscription is the ID of the subscription it belongs to.
	Subscription string `json:"subscription"`
}

// EdgeKind says what an [Edge] means. It encodes to JSON as its string.
type EdgeKind string

// The kinds of edges.
const (
	// Publishes goes from a service (or [ExternalID]) to a topic it
	// publishes.
	Publishes EdgeKind = "publishes"
	// Delivers goes from a topic to a subscription that receives a copy of
	// each of its events.
	Delivers EdgeKind = "delivers"
	// HandledBy goes from a subscription to the service whose handler
	// handles its events.
	HandledBy EdgeKind = "handled-by"
	// Emits goes from a subscription to a topic its handler publishes: the
	// causal edge from one event to the next.
	Emits EdgeKind = "emits"
	// DeadLetters goes from a subscription to its dead-letter store, taken
	// after the last attempt (Edge.Attempts) or at once for a permanent
	// error.
	DeadLetters EdgeKind = "dead-letters"
	// Compensates goes from a subscription to the failure topic it
	// publishes when its handler fails for good (troupe.OnFailure): the
	// start of the compensation path.
	Compensates EdgeKind = "compensates"
	// Undeclared goes from a subscription to a topic its handler was seen
	// publishing at run time without declaring it with troupe.Emits: a
	// path of the choreography the declaration does not show. Only a graph
	// of a running app has them (troupe.App.UndeclaredEmits).
	Undeclared EdgeKind = "undeclared"
)

// Edge is a directed edge between two nodes, named by their IDs.
type Edge struct {
	// From is the ID of the source node.
	From string `json:"from"`
	// To is the ID of the target node.
	To string `json:"to"`
	// Kind says what the edge means.
	Kind EdgeKind `json:"kind"`
	// Attempts is, for a DeadLetters edge, the number of attempts after
	// which the event is dead-lettered; 0 otherwise.
	Attempts int `json:"attempts,omitempty"`
}

// ServiceID returns the node ID of the service named name.
func ServiceID(name string) string { return "service:" + name }

// TopicID returns the node ID of the topic named name.
func TopicID(name string) string { return "topic:" + name }

// SubscriptionID returns the node ID of a subscription, given as
// "service.name".
func SubscriptionID(ref string) string { return "subscription:" + ref }

// DeadLettersID returns the node ID of the dead-letter store of a
// subscription, given as "service.name".
func DeadLettersID(ref string) string { return "dead-letters:" + ref }

// FromApp builds the graph of app's declaration. It does not validate the
// declaration (see [troupe.App.Validate]): a topic that is subscribed to but
// published by nobody appears with no publishers.
func FromApp(app *troupe.App) *Graph {
	g := &Graph{App: app.Name()}
	topics := map[string]*Topic{}
	topic := func(t troupe.AnyTopic) *Topic {
		if tp, ok := topics[t.Name()]; ok {
			return tp
		}
		tp := &Topic{ID: TopicID(t.Name()), Name: t.Name(), Version: t.Version(), Type: t.Type(), Versions: t.Versions(), Ordered: t.Ordered(), Publishers: []string{}, Schema: SchemaOf(t.GoType())}
		if rt := t.GoType(); rt != nil {
			tp.GoType, tp.GoPackage = rt.String(), pkgPath(rt)
		}
		topics[t.Name()] = tp
		return tp
	}
	edges := map[Edge]bool{}
	edge := func(e Edge) { edges[e] = true }

	for _, u := range app.UndeclaredEmits() {
		if t := topicByName(app, u.Topic); t != nil {
			edge(Edge{From: SubscriptionID(u.Subscription), To: topic(t).ID, Kind: Undeclared})
		}
	}
	for _, t := range app.ExternalTopics() {
		tp := topic(t)
		tp.External = true
		edge(Edge{From: ExternalID, To: tp.ID, Kind: Publishes})
	}
	for _, s := range app.Services() {
		if strings.HasPrefix(s.Name(), "troupetest-") {
			continue // a test kit's hidden observer, not part of the design
		}
		svc := Service{ID: ServiceID(s.Name()), Name: s.Name(), Routes: s.Routes(), Publishes: []string{}, Subscriptions: []string{}}
		sort.Strings(svc.Routes)
		for _, t := range s.Topics() {
			tp := topic(t)
			svc.Publishes = appendUnique(svc.Publishes, tp.Name)
			tp.Publishers = appendUnique(tp.Publishers, s.Name())
			edge(Edge{From: svc.ID, To: tp.ID, Kind: Publishes})
		}
		for _, sub := range s.Subscriptions() {
			ref := sub.String()
			cfg := sub.Config()
			sp := Subscription{
				ID: SubscriptionID(ref), Service: s.Name(), Name: sub.Name(), Emits: []string{},
				Retry: Retry{
					MaxAttempts: cfg.MaxAttempts, MinBackoff: Duration(cfg.MinBackoff),
					MaxBackoff: Duration(cfg.MaxBackoff), Deadline: Duration(cfg.Deadline),
				},
				DeadLetters: DeadLettersID(ref),
			}
			if t := sub.TopicOf(); t != nil {
				tp := topic(t)
				sp.Topic = tp.Name
				edge(Edge{From: tp.ID, To: sp.ID, Kind: Delivers})
			}
			edge(Edge{From: sp.ID, To: svc.ID, Kind: HandledBy})
			for _, t := range sub.Emits() {
				tp := topic(t)
				sp.Emits = appendUnique(sp.Emits, tp.Name)
				edge(Edge{From: sp.ID, To: tp.ID, Kind: Emits})
			}
			sort.Strings(sp.Emits)
			if t := sub.Compensation(); t != nil {
				tp := topic(t)
				sp.Compensation = tp.Name
				edge(Edge{From: sp.ID, To: tp.ID, Kind: Compensates})
			}
			edge(Edge{From: sp.ID, To: sp.DeadLetters, Kind: DeadLetters, Attempts: cfg.MaxAttempts})
			g.Subscriptions = append(g.Subscriptions, sp)
			g.DeadLetters = append(g.DeadLetters, DeadLetterStore{ID: sp.DeadLetters, Subscription: sp.ID})
			svc.Subscriptions = append(svc.Subscriptions, sp.ID)
		}
		sort.Strings(svc.Publishes)
		sort.Strings(svc.Subscriptions)
		g.Services = append(g.Services, svc)
	}
	for _, tp := range topics {
		sort.Strings(tp.Publishers)
		if tp.External {
			tp.Publishers = append(tp.Publishers, ExternalID)
		}
		g.Topics = append(g.Topics, *tp)
	}
	for e := range edges {
		g.Edges = append(g.Edges, e)
	}

	sort.Slice(g.Services, func(i, j int) bool { return g.Services[i].Name < g.Services[j].Name })
	sort.Slice(g.Topics, func(i, j int) bool { return g.Topics[i].Name < g.Topics[j].Name })
	sort.Slice(g.Subscriptions, func(i, j int) bool { return g.Subscriptions[i].ID < g.Subscriptions[j].ID })
	sort.Slice(g.DeadLetters, func(i, j int) bool { return g.DeadLetters[i].ID < g.DeadLetters[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		if a.Kind != b.Kind {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.Attempts < b.Attempts
	})
	// Keep slices non-nil so that JSON writes [] rather than null.
	if g.Services == nil {
		g.Services = []Service{}
	}
	if g.Topics == nil {
		g.Topics = []Topic{}
	}
	if g.Subscriptions == nil {
		g.Subscriptions = []Subscription{}
	}
	if g.DeadLetters == nil {
		g.DeadLetters = []DeadLetterStore{}
	}
	if g.Edges == nil {
		g.Edges = []Edge{}
	}
	return g
}

// kindOrder ranks edge kinds in the order events flow along them.
func kindOrder(k EdgeKind) int {
	for i, o := range []EdgeKind{Publishes, Delivers, HandledBy, Emits, Undeclared, DeadLetters, Compensates} {
		if k == o {
			return i
		}
	}
	return 99
}

// topicByName finds a topic the app declares (published by a service or
// from outside).
func topicByName(app *troupe.App, name string) troupe.AnyTopic {
	for _, t := range app.ExternalTopics() {
		if t.Name() == name {
			return t
		}
	}
	for _, s := range app.Services() {
		for _, t := range s.Topics() {
			if t.Name() == name {
				return t
			}
		}
	}
	return nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func pkgPath(t reflect.Type) string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		if t.Name() != "" {
			break
		}
		t = t.Elem()
	}
	return t.PkgPath()
}

// implied reports whether a publishes edge from a service to a topic is
// explained by an emits edge from one of the service's subscriptions to the
// same topic. The renderers leave such edges out, so that the drawing shows
// the causal path (event → subscription → event) once.
func (g *Graph) implied() map[Edge]bool {
	owner := map[string]string{} // subscription ID → service ID
	for _, s := range g.Subscriptions {
		owner[s.ID] = ServiceID(s.Service)
	}
	out := map[Edge]bool{}
	for _, e := range g.Edges {
		if e.Kind == Emits || e.Kind == Compensates {
			out[Edge{From: owner[e.From], To: e.To, Kind: Publishes}] = true
		}
	}
	return out
}
