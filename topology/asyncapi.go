package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// AsyncAPIVersion is the version of the AsyncAPI specification that
// [Graph.AsyncAPI] writes.
const AsyncAPIVersion = "3.0.0"

// AsyncAPIInfoVersion is the info.version of the documents [Graph.AsyncAPI]
// writes: the graph carries no version of the app's API, and each topic
// carries its own in its wire type.
const AsyncAPIInfoVersion = "1.0.0"

// AsyncAPI writes the graph as an AsyncAPI 3.0.0 document, in indented JSON:
//
//   - info.title is the app's name;
//   - one channel per topic, keyed and addressed by its wire type
//     ("order_placed.v1"), which is the NATS subject
//     troupe.<app>.e.<wire type> and the AMQP routing key on the topic
//     exchange troupe.<app>;
//   - one message per topic (components.messages, keyed by the topic's name)
//     with contentType application/json, a payload schema generated from
//     the Go type ([SchemaOf]) and a headers schema of the CloudEvents
//     binary-mode headers troupe writes (ce-specversion, ce-id, ce-source,
//     ce-type, ce-time, ce-correlationid, ce-causationid, traceparent,
//     content-type);
//   - a send operation "<service>.send.<topic>" for each topic a service
//     publishes (with Publishes or Emits), and a receive operation
//     "<service>.<subscription>" for each subscription, with its retry
//     policy and what its handler emits in the description.
//
// Topics published from outside the app (App.Topics) have a channel but no
// send operation. Everything is sorted, so the output changes only when the
// declaration does.
func (g *Graph) AsyncAPI(w io.Writer) error {
	doc := asyncDoc{
		AsyncAPI: AsyncAPIVersion,
		Info: asyncInfo{
			Title:   g.App,
			Version: AsyncAPIInfoVersion,
			Description: fmt.Sprintf("The events of the troupe app %s. Every event is a CloudEvent 1.0 in binary content mode: "+
				"the attributes are ce-* headers, the data is the JSON body. A channel's address is the event's wire type "+
				"<topic>.v<N>; on NATS JetStream it is published to the subject troupe.%s.e.<topic>.v<N> (stream TROUPE_%s_EVENTS@<topic>), "+
				"on AMQP 0-9-1 to the topic exchange troupe.%s with the routing key <topic>.v<N>.", g.App, g.App, g.App, g.App),
		},
		DefaultContentType: "application/json",
		Channels:           map[string]asyncChannel{},
		Operations:         map[string]asyncOperation{},
		Components:         asyncComponents{Messages: map[string]asyncMessage{}},
	}
	topics := map[string]Topic{}
	for _, t := range g.Topics {
		topics[t.Name] = t
		doc.Channels[t.Type] = asyncChannel{
			Address: t.Type,
			Title:   t.Type,
			Description: fmt.Sprintf("Version %d of topic %s. NATS subject troupe.%s.e.%s; AMQP exchange troupe.%s, routing key %s. %s",
				t.Version, t.Name, g.App, t.Type, g.App, t.Type, publishedBy(t)),
			Messages: map[string]asyncRef{t.Name: {Ref: "#/components/messages/" + t.Name}},
		}
		schema := t.Schema
		if schema == nil {
			schema = &Schema{}
		}
		msg := asyncMessage{
			Name:        t.Name,
			Title:       t.Type,
			ContentType: "application/json",
			Headers:     cloudEventHeaders(t.Type),
			Payload:     schema,
		}
		if t.GoType != "" {
			msg.Description = "The data is a Go " + t.GoType
			if t.GoPackage != "" {
				msg.Description += " (package " + t.GoPackage + ")"
			}
			msg.Description += ", encoded with encoding/json."
		}
		doc.Components.Messages[t.Name] = msg
	}
	channelRefs := func(topic string) (asyncRef, []asyncRef) {
		typ := topics[topic].Type
		return asyncRef{Ref: "#/channels/" + typ}, []asyncRef{{Ref: "#/channels/" + typ + "/messages/" + topic}}
	}

	subs := map[string]Subscription{}
	for _, s := range g.Subscriptions {
		subs[s.ID] = s
	}
	for _, svc := range g.Services {
		publishes := append([]string(nil), svc.Publishes...)
		for _, id := range svc.Subscriptions {
			for _, e := range subs[id].Emits {
				publishes = appendUnique(publishes, e)
			}
		}
		sort.Strings(publishes)
		for _, name := range publishes {
			if _, ok := topics[name]; !ok {
				continue
			}
			ch, msgs := channelRefs(name)
			doc.Operations[svc.Name+".send."+name] = asyncOperation{
				Action:   "send",
				Channel:  ch,
				Summary:  fmt.Sprintf("%s publishes %s.", svc.Name, topics[name].Type),
				Messages: msgs,
			}
		}
	}
	for _, s := range g.Subscriptions {
		if _, ok := topics[s.Topic]; !ok {
			continue
		}
		ch, msgs := channelRefs(s.Topic)
		doc.Operations[s.Service+"."+s.Name] = asyncOperation{
			Action:      "receive",
			Channel:     ch,
			Summary:     fmt.Sprintf("Subscription %s.%s: %s handles %s.", s.Service, s.Name, s.Service, topics[s.Topic].Type),
			Description: subscriptionDescription(g.App, s, topics),
			Messages:    msgs,
		}
	}

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func publishedBy(t Topic) string {
	var who []string
	for _, p := range t.Publishers {
		if p == ExternalID {
			who = append(who, "publishers outside the app")
		} else {
			who = append(who, "service "+p)
		}
	}
	if len(who) == 0 {
		return "No service declares that it publishes it."
	}
	return "Published by " + strings.Join(who, ", ") + "."
}

func subscriptionDescription(app string, s Subscription, topics map[string]Topic) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Every subscription gets its own copy of each event (NATS consumer %s@%s on stream TROUPE_%s_EVENTS@%s; AMQP queue %s.%s.%s).",
		s.Service, s.Name, app, s.Topic, app, s.Service, s.Name)
	if len(s.Emits) > 0 {
		types := make([]string, len(s.Emits))
		for i, e := range s.Emits {
			types[i] = e
			if t, ok := topics[e]; ok {
				types[i] = t.Type
			}
		}
		fmt.Fprintf(&b, " The handler publishes %s.", strings.Join(types, ", "))
	}
	r := s.Retry
	fmt.Fprintf(&b, " A failed event is tried up to %d times in all (backoff %s doubling up to %s, deadline %s per attempt), then moved to the dead letters of %s.%s; a permanent error moves it there at once.",
		r.MaxAttempts, r.MinBackoff, r.MaxBackoff, r.Deadline, s.Service, s.Name)
	return b.String()
}

// cloudEventHeaders is the schema of the CloudEvents binary-mode headers
// that transport.EncodeHeaders writes for an event of wire type typ.
func cloudEventHeaders(typ string) *Schema {
	str := func(desc string) *Schema { return &Schema{Type: SchemaType{"string"}, Description: desc} }
	return &Schema{
		Type:        SchemaType{"object"},
		Description: "CloudEvents 1.0 attributes in binary content mode, one header each (NATS message headers, AMQP message headers).",
		Properties: map[string]*Schema{
			"ce-specversion":   {Type: SchemaType{"string"}, Const: "1.0", Description: "CloudEvents specification version."},
			"ce-id":            str("Event ID, unique per event; a retried publish keeps it."),
			"ce-source":        str("The publisher: the app's source base, then /<service> when a service publishes."),
			"ce-type":          {Type: SchemaType{"string"}, Const: typ, Description: "The wire type <topic>.v<N>."},
			"ce-time":          {Type: SchemaType{"string"}, Format: "date-time", Description: "When the event was published (RFC 3339, UTC)."},
			"ce-correlationid": str("ID of the business transaction the event belongs to, carried from event to event."),
			"ce-causationid":   str("ID of the event whose handler published this one."),
			"traceparent":      str("W3C Trace Context of the publish, linking the handling to the same trace."),
			"content-type":     {Type: SchemaType{"string"}, Const: "application/json", Description: "Content type of the data."},
		},
		Required: []string{"ce-id", "ce-source", "ce-specversion", "ce-type", "content-type"},
	}
}

type asyncDoc struct {
	AsyncAPI           string                    `json:"asyncapi"`
	Info               asyncInfo                 `json:"info"`
	DefaultContentType string                    `json:"defaultContentType"`
	Channels           map[string]asyncChannel   `json:"channels"`
	Operations         map[string]asyncOperation `json:"operations"`
	Components         asyncComponents           `json:"components"`
}

type asyncInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

type asyncRef struct {
	Ref string `json:"$ref"`
}

type asyncChannel struct {
	Address     string              `json:"address"`
	Title       string              `json:"title,omitempty"`
	Description string              `json:"description,omitempty"`
	Messages    map[string]asyncRef `json:"messages"`
}

type asyncOperation struct {
	Action      string     `json:"action"`
	Channel     asyncRef   `json:"channel"`
	Summary     string     `json:"summary,omitempty"`
	Description string     `json:"description,omitempty"`
	Messages    []asyncRef `json:"messages"`
}

type asyncComponents struct {
	Messages map[string]asyncMessage `json:"messages"`
}

type asyncMessage struct {
	Name        string  `json:"name"`
	Title       string  `json:"title,omitempty"`
	Description string  `json:"description,omitempty"`
	ContentType string  `json:"contentType"`
	Headers     *Schema `json:"headers"`
	Payload     *Schema `json:"payload"`
}
