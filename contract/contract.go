package contract

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// Contract is what one program promises and expects of its events: the
// topics it publishes with the schema of their data, the topics it consumes
// with the fields each subscription's handler reads, and the older versions
// it still reads through upcasters. [FromApp] makes one from an app's
// declaration; [Read] and [ReadFile] load one that [Contract.Write] wrote.
type Contract struct {
	// App is the app's name: the namespace its events live in on the
	// broker. Only contracts of the same app exchange events.
	App string `json:"app"`
	// Services are the services the program declares, sorted. They say
	// which parts of a baseline are this program's earlier release.
	Services []string `json:"services"`
	// Topics are every topic the program publishes, consumes or declares
	// with App.Topics, sorted by name; one version each, as a program
	// publishes and reads one version of a topic.
	Topics []Topic `json:"topics"`
	// Subscriptions are the subscriptions of all services, sorted by
	// service and name.
	Subscriptions []Subscription `json:"subscriptions"`

	// Source says where the contract was read from (the file name given to
	// ReadFile); "" for one made by FromApp. Reports name baselines by it.
	Source string `json:"-"`
}

// Topic is one topic of a contract at the version the program publishes
// and reads.
type Topic struct {
	// Name is the topic's stable name ("order_placed").
	Name string `json:"name"`
	// Version is the version the program publishes and reads.
	Version int `json:"version"`
	// GoType is the Go type of the data, for people ("orders.PlacedV2").
	GoType string `json:"goType,omitempty"`
	// Schema is the JSON Schema of the data ([topology.SchemaOf]).
	Schema *topology.Schema `json:"schema"`
	// Publishers are the services of the program that publish it (with
	// Publishes, Emits or OnFailure), sorted. Empty when the program only
	// consumes it.
	Publishers []string `json:"publishers"`
	// External reports a topic declared with App.Topics: published from
	// outside the program, so Schema is what the program expects of it,
	// not a promise.
	External bool `json:"external,omitempty"`
	// Upcasters are the older versions the program still reads, each
	// through an upcaster (troupe.Upcast), sorted by version.
	Upcasters []Upcaster `json:"upcasters,omitempty"`
}

// Type returns the topic's wire type, "<name>.v<version>".
func (t Topic) Type() string { return transport.WireType(t.Name, t.Version) }

// Upcaster is an older version of a topic that the program reads by
// decoding it as an older Go type and converting it (troupe.Upcast).
type Upcaster struct {
	// From is the older version.
	From int `json:"from"`
	// GoType is the Go type events of that version are decoded into.
	GoType string `json:"goType,omitempty"`
	// Schema is that type's schema: what the program still expects of
	// events of version From.
	Schema *topology.Schema `json:"schema"`
}

// Subscription is a subscription and what its handler reads.
type Subscription struct {
	// Service is the service that owns the subscription.
	Service string `json:"service"`
	// Name is the subscription's name within its service.
	Name string `json:"name"`
	// Topic is the name of the topic it handles.
	Topic string `json:"topic"`
	// Version is the version its handler's type decodes; older versions
	// reach it through the topic's upcasters.
	Version int `json:"version"`
	// Reads is the schema of what the handler needs: the schema of the
	// handler's Go type, cut down to the fields declared with [Reads] when
	// there is such a declaration. A producer must send every field in it,
	// in a shape it accepts.
	Reads *topology.Schema `json:"reads"`
	// Declared are the field paths named with [Reads], sorted; nil when
	// the handler is taken to read every field of its type.
	Declared []string `json:"declared,omitempty"`

	// retry is the subscription's retry policy when FromApp made it, for
	// the description of its AsyncAPI operation; a contract does not
	// carry it.
	retry *topology.Retry
}

// Ref returns "service.name", the subscription's name in logs and reports.
func (s Subscription) Ref() string { return s.Service + "." + s.Name }

// topic returns the contract's topic of that name, or nil.
func (c *Contract) topic(name string) *Topic {
	for i := range c.Topics {
		if c.Topics[i].Name == name {
			return &c.Topics[i]
		}
	}
	return nil
}

// hasService reports whether the program declares service name.
func (c *Contract) hasService(name string) bool {
	return slices.Contains(c.Services, name)
}

// FromApp makes the contract of app's declaration. It connects to nothing.
// It fails when the declaration is invalid ([troupe.App.Validate]) or a
// [Reads] declaration names a field the handler's type does not have.
// Services whose names start with "troupetest-" (the test kit's hidden
// observers) are left out, as the topology leaves them out.
func FromApp(app *troupe.App) (*Contract, error) {
	if err := app.Validate(); err != nil {
		return nil, fmt.Errorf("contract of %s: the declaration is invalid: %w", app.Name(), err)
	}
	g := topology.FromApp(app)
	c := &Contract{App: app.Name(), Services: []string{}, Topics: []Topic{}, Subscriptions: []Subscription{}}

	declared := map[string]troupe.AnyTopic{}
	note := func(t troupe.AnyTopic) {
		if t != nil {
			declared[t.Name()] = t
		}
	}
	for _, t := range app.ExternalTopics() {
		note(t)
	}
	publishers := map[string][]string{}
	publish := func(topic, service string) {
		if !slices.Contains(publishers[topic], service) {
			publishers[topic] = append(publishers[topic], service)
		}
	}
	var subs []*troupe.Subscription
	for _, s := range app.Services() {
		if strings.HasPrefix(s.Name(), "troupetest-") {
			continue
		}
		c.Services = append(c.Services, s.Name())
		for _, t := range s.Topics() {
			note(t)
			publish(t.Name(), s.Name())
		}
		for _, sub := range s.Subscriptions() {
			note(sub.TopicOf())
			for _, t := range sub.Emits() {
				note(t)
				publish(t.Name(), s.Name())
			}
			if t := sub.Compensation(); t != nil {
				note(t)
				publish(t.Name(), s.Name())
			}
			subs = append(subs, sub)
		}
	}
	sort.Strings(c.Services)

	for _, gt := range g.Topics {
		t := Topic{Name: gt.Name, Version: gt.Version, GoType: gt.GoType, Schema: gt.Schema, External: gt.External, Publishers: publishers[gt.Name]}
		if t.Publishers == nil {
			t.Publishers = []string{}
		}
		sort.Strings(t.Publishers)
		if at := declared[gt.Name]; at != nil {
			for _, v := range at.Versions() {
				rt := at.UpcastType(v)
				if v == at.Version() || rt == nil {
					continue
				}
				t.Upcasters = append(t.Upcasters, Upcaster{From: v, GoType: rt.String(), Schema: topology.SchemaOf(rt)})
			}
		}
		c.Topics = append(c.Topics, t)
	}

	retries := map[string]topology.Retry{}
	for _, gs := range g.Subscriptions {
		retries[gs.Service+"."+gs.Name] = gs.Retry
	}
	var errs []error
	for _, sub := range subs {
		at := sub.TopicOf()
		t := c.topic(at.Name())
		s := Subscription{Service: sub.Service().Name(), Name: sub.Name(), Topic: at.Name(), Version: at.Version(), Reads: t.Schema}
		if r, ok := retries[s.Ref()]; ok {
			s.retry = &r
		}
		if fields, ok := declaredReads(sub); ok {
			reads, err := prune(t.Schema, fields)
			if err != nil {
				errs = append(errs, fmt.Errorf("contract.Reads(%s): %w", s.Ref(), err))
				continue
			}
			s.Reads = reads
			s.Declared = slices.Sorted(slices.Values(fields))
			if s.Declared == nil {
				s.Declared = []string{}
			}
		}
		c.Subscriptions = append(c.Subscriptions, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("contract of %s: %w", app.Name(), err)
	}
	sortSubscriptions(c.Subscriptions)
	return c, nil
}

func sortSubscriptions(subs []Subscription) {
	sort.Slice(subs, func(i, j int) bool {
		a, b := subs[i], subs[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Name < b.Name
	})
}
