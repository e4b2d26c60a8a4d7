package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// FormatVersion is the version of the contract file format that
// [Contract.Write] writes and [Read] reads, kept in the file's
// x-troupe-contract.format. A file of another version is refused.
const FormatVersion = 1

// ErrNotContract is wrapped by the errors of [Read] and [ReadFile] for
// input that is not a troupe contract: not JSON, JSON of another kind (an
// AsyncAPI document without the troupe extensions, a topology graph, a
// check report), a contract of another format version, or one whose parts
// do not fit together.
var ErrNotContract = errors.New("not a troupe contract")

// The extensions a contract adds to the AsyncAPI document. AsyncAPI lets
// any object carry x- fields; tools that do not know them pass them by.
const (
	extContract     = "x-troupe-contract"     // root: format, app, services
	extTopic        = "x-troupe-topic"        // a channel: the topic at the program's version
	extSubscription = "x-troupe-subscription" // a receive operation: what the handler reads
)

type fileMeta struct {
	Format   int      `json:"format"`
	App      string   `json:"app"`
	Services []string `json:"services"`
}

type fileTopic struct {
	Name       string     `json:"name"`
	Version    int        `json:"version"`
	GoType     string     `json:"goType,omitempty"`
	Publishers []string   `json:"publishers"`
	External   bool       `json:"external,omitempty"`
	Upcasters  []Upcaster `json:"upcasters,omitempty"`
}

type fileSubscription struct {
	Service  string           `json:"service"`
	Name     string           `json:"name"`
	Topic    string           `json:"topic"`
	Version  int              `json:"version"`
	Declared []string         `json:"declared,omitempty"`
	Reads    *topology.Schema `json:"reads"`
}

// Write writes the contract as an AsyncAPI 3.0.0 document in indented
// JSON: the document the topology writes for the app (channels, messages
// with their payload schemas, send and receive operations), with three
// extensions that hold what AsyncAPI has no place for:
//
//   - x-troupe-contract at the root: {"format": 1, "app", "services"};
//   - x-troupe-topic on each topic's channel: its name, version,
//     publishers, whether it comes from outside the program, and its
//     upcasters with the schema of each older version they read;
//   - x-troupe-subscription on each subscription's receive operation: its
//     service, name, topic and version, the fields declared with [Reads],
//     and the schema of what the handler reads.
//
// A topic's payload schema is its channel's message payload. Keys are
// sorted, so the same declaration writes the same bytes. It fails only when
// w does.
func (c *Contract) Write(w io.Writer) error {
	doc, err := c.document()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

// document builds the AsyncAPI document of c as generic JSON: the graph's
// document, with the extensions added.
func (c *Contract) document() (map[string]any, error) {
	var b bytes.Buffer
	if err := c.graph().AsyncAPI(&b); err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		return nil, err
	}
	doc[extContract] = fileMeta{Format: FormatVersion, App: c.App, Services: nonNil(c.Services)}
	channels, _ := doc["channels"].(map[string]any)
	for _, t := range c.Topics {
		ch, _ := channels[t.Type()].(map[string]any)
		if ch == nil {
			return nil, fmt.Errorf("contract of %s: the AsyncAPI document has no channel %s", c.App, t.Type())
		}
		ch[extTopic] = fileTopic{Name: t.Name, Version: t.Version, GoType: t.GoType, Publishers: nonNil(t.Publishers), External: t.External, Upcasters: t.Upcasters}
	}
	ops, _ := doc["operations"].(map[string]any)
	for _, s := range c.Subscriptions {
		op, _ := ops[s.Ref()].(map[string]any)
		if op == nil {
			return nil, fmt.Errorf("contract of %s: the AsyncAPI document has no operation %s", c.App, s.Ref())
		}
		if s.retry == nil {
			// Read from a file or made by hand: the retry policy, which
			// the topology describes, is not part of a contract.
			op["description"] = fmt.Sprintf("Every subscription gets its own copy of each event. (The retry policy of %s is not part of the contract.)", s.Ref())
		}
		op[extSubscription] = fileSubscription{Service: s.Service, Name: s.Name, Topic: s.Topic, Version: s.Version, Declared: s.Declared, Reads: s.Reads}
	}
	return doc, nil
}

// graph is the topology graph the AsyncAPI document is written from: the
// contract's services, topics and subscriptions, with the default retry
// policy, since a contract does not carry one.
func (c *Contract) graph() *topology.Graph {
	g := &topology.Graph{App: c.App}
	services := map[string]*topology.Service{}
	for _, name := range c.Services {
		services[name] = &topology.Service{ID: topology.ServiceID(name), Name: name, Routes: []string{}, Publishes: []string{}, Subscriptions: []string{}}
	}
	for _, t := range c.Topics {
		pubs := append([]string{}, t.Publishers...)
		if t.External {
			pubs = append(pubs, topology.ExternalID)
		}
		g.Topics = append(g.Topics, topology.Topic{
			ID: topology.TopicID(t.Name), Name: t.Name, Version: t.Version, Type: t.Type(),
			GoType: t.GoType, Schema: t.Schema, Publishers: pubs, External: t.External,
		})
		for _, p := range t.Publishers {
			if svc := services[p]; svc != nil {
				svc.Publishes = append(svc.Publishes, t.Name)
			}
		}
	}
	for _, s := range c.Subscriptions {
		ref := s.Service + "." + s.Name
		gs := topology.Subscription{
			ID: topology.SubscriptionID(ref), Service: s.Service, Name: s.Name, Topic: s.Topic, Emits: []string{},
			DeadLetters: topology.DeadLettersID(ref),
		}
		if s.retry != nil {
			gs.Retry = *s.retry
		}
		g.Subscriptions = append(g.Subscriptions, gs)
		if svc := services[s.Service]; svc != nil {
			svc.Subscriptions = append(svc.Subscriptions, topology.SubscriptionID(ref))
		}
	}
	for _, name := range c.Services {
		g.Services = append(g.Services, *services[name])
	}
	return g
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ReadFile reads the contract in the file at path (see [Read]) and sets its
// Source to path. It fails when the file cannot be read, or as Read fails,
// with the path in the error.
func ReadFile(path string) (*Contract, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Read(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Source = path
	return c, nil
}

// Read reads a contract that [Contract.Write] wrote. It fails with an
// error wrapping [ErrNotContract] that says what the input is instead:
// not JSON (with the line and column), an AsyncAPI document without the
// troupe extensions (such as the graph command's asyncapi format), a
// topology graph, a check report, a contract of another format version, or
// a contract whose channels, messages and operations do not fit together.
func Read(r io.Reader) (*Contract, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotContract, jsonError(b, err))
	}
	if _, ok := top[extContract]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotContract, whatItIs(top))
	}
	var doc struct {
		Meta     fileMeta `json:"x-troupe-contract"`
		Channels map[string]struct {
			Address  string `json:"address"`
			Messages map[string]struct {
				Ref string `json:"$ref"`
			} `json:"messages"`
			Topic *fileTopic `json:"x-troupe-topic"`
		} `json:"channels"`
		Operations map[string]struct {
			Action       string            `json:"action"`
			Subscription *fileSubscription `json:"x-troupe-subscription"`
		} `json:"operations"`
		Components struct {
			Messages map[string]struct {
				Payload *topology.Schema `json:"payload"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotContract, jsonError(b, err))
	}
	m := doc.Meta
	switch {
	case m.Format != FormatVersion:
		return nil, fmt.Errorf("%w: format %d; this troupe reads format %d: export the contract again with this troupe", ErrNotContract, m.Format, FormatVersion)
	case !transport.ValidName(m.App):
		return nil, fmt.Errorf("%w: %s.app %q is not an app name", ErrNotContract, extContract, m.App)
	}
	c := &Contract{App: m.App, Services: nonNil(m.Services), Topics: []Topic{}, Subscriptions: []Subscription{}}
	sort.Strings(c.Services)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrNotContract, fmt.Sprintf(format, args...))
	}
	for _, key := range sortedKeys(doc.Channels) {
		ch := doc.Channels[key]
		ft := ch.Topic
		if ft == nil {
			return nil, bad("channel %s has no %s", key, extTopic)
		}
		t := Topic{Name: ft.Name, Version: ft.Version, GoType: ft.GoType, Publishers: nonNil(ft.Publishers), External: ft.External, Upcasters: ft.Upcasters}
		if !transport.ValidName(t.Name) || t.Version < 1 || key != t.Type() {
			return nil, bad("channel %s: %s names topic %q version %d", key, extTopic, t.Name, t.Version)
		}
		if c.topic(t.Name) != nil {
			return nil, bad("topic %s has two channels", t.Name)
		}
		if len(ch.Messages) != 1 {
			return nil, bad("channel %s has %d messages, want 1", key, len(ch.Messages))
		}
		for _, ref := range ch.Messages {
			name, ok := strings.CutPrefix(ref.Ref, "#/components/messages/")
			msg, found := doc.Components.Messages[name]
			if !ok || !found || msg.Payload == nil {
				return nil, bad("channel %s: its message %q is not a message with a payload in components.messages", key, ref.Ref)
			}
			t.Schema = msg.Payload
		}
		for _, u := range t.Upcasters {
			if u.From < 1 || u.From >= t.Version || u.Schema == nil {
				return nil, bad("topic %s: an upcaster from version %d with schema %v: upcasters read older versions, each with its schema", t.Type(), u.From, u.Schema != nil)
			}
		}
		sort.Slice(t.Upcasters, func(i, j int) bool { return t.Upcasters[i].From < t.Upcasters[j].From })
		sort.Strings(t.Publishers)
		c.Topics = append(c.Topics, t)
	}
	sort.Slice(c.Topics, func(i, j int) bool { return c.Topics[i].Name < c.Topics[j].Name })
	for _, key := range sortedKeys(doc.Operations) {
		op := doc.Operations[key]
		fs := op.Subscription
		if op.Action != "receive" {
			continue
		}
		if fs == nil {
			return nil, bad("receive operation %s has no %s", key, extSubscription)
		}
		s := Subscription{Service: fs.Service, Name: fs.Name, Topic: fs.Topic, Version: fs.Version, Reads: fs.Reads, Declared: fs.Declared}
		t := c.topic(s.Topic)
		switch {
		case s.Reads == nil:
			return nil, bad("subscription %s has no reads schema", s.Ref())
		case t == nil || t.Version != s.Version:
			return nil, bad("subscription %s reads %s, which has no channel", s.Ref(), transport.WireType(s.Topic, s.Version))
		case !c.hasService(s.Service):
			return nil, bad("subscription %s belongs to service %q, which %s.services does not list", s.Ref(), s.Service, extContract)
		}
		c.Subscriptions = append(c.Subscriptions, s)
	}
	sortSubscriptions(c.Subscriptions)
	return c, nil
}

// whatItIs names the kind of a JSON object that is not a contract, for an
// error that helps whoever passed the wrong file.
func whatItIs(top map[string]json.RawMessage) string {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := top[k]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("asyncapi"):
		return "an AsyncAPI document without " + extContract + " (the graph command's asyncapi format?): write contracts with '<app> contract export'"
	case has("app", "topics", "edges"):
		return "a topology graph (the graph command's json format): write contracts with '<app> contract export'"
	case has("changes", "breaking"):
		return "a contract check report: pass a contract written by '<app> contract export'"
	}
	return "a JSON object without " + extContract + ": write contracts with '<app> contract export'"
}

// jsonError describes a JSON decoding error with its line and column.
func jsonError(b []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 || off > int64(len(b)) {
		return "not JSON: " + err.Error()
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:off], '\n')
	if typ != nil {
		return fmt.Sprintf("line %d, column %d: %v", line, col, err)
	}
	return fmt.Sprintf("not JSON: line %d, column %d: %v", line, col, err)
}
