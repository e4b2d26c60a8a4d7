package contract

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// ErrBreaking is wrapped by the error of the check command when the report
// has a breaking change.
var ErrBreaking = errors.New("breaking changes to the event contract")

// wire is a topic version: the wire type <topic>.v<version>.
type wire struct {
	topic   string
	version int
}

func (w wire) String() string { return transport.WireType(w.topic, w.version) }

type role int

const (
	roleCurrent  role = iota // the code being checked
	rolePrevious             // this program's earlier release, from the baseline that holds its services
	roleOther                // another program of the same app
)

// producer is one source of events of a topic version.
type producer struct {
	role   role
	schema *topology.Schema
	// label names the events in a problem: "what orders publishes now".
	label string
}

// consumer is one reader of a topic version: a subscription, directly or
// through an upcaster.
type consumer struct {
	role     role
	program  *Contract
	sub      Subscription
	upcaster int // the older version read through an upcaster; 0 when direct
	reads    *topology.Schema
}

func (c consumer) broken(problem string) Broken {
	b := Broken{Subscription: c.sub.Ref(), Contract: c.program.Source, Problem: problem}
	if c.upcaster > 0 {
		b.Subscription += fmt.Sprintf(" (through its upcaster from v%d)", c.upcaster)
	}
	return b
}

// issue is a problem a consumer meets with a producer's events.
type issue struct {
	w    wire
	p    problem
	prod producer
	cons consumer
	used bool
}

func (i *issue) broken() Broken { return i.cons.broken(fmt.Sprintf(i.p.text, i.prod.label)) }

// checker holds one Check.
type checker struct {
	cur       *Contract
	own       *Contract // the baseline with this program's services, or nil
	baselines []*Contract
	producers map[wire][]producer
	consumers map[wire][]consumer
	issues    []*issue
	changes   []*Change
	fixes     map[*Change]string // how to make a breaking change safe, where the kind does not say
}

// Check compares current, the contract of the code, with baselines: the
// program's own earlier export (a release gate) and the exports of other
// programs of the same app (consumers in other repositories). Every change
// is classified, per topic version, as compatible or breaking, and a
// breaking change names the subscriptions it breaks (see the package
// documentation for the rules).
//
// The baseline that declares any of current's services is the earlier
// release: its subscriptions of those services are replaced by current's,
// and its events are still in flight, in history and in dead letters, so
// current must read them. Its other services, and every service of the
// other baselines, are taken to keep running as they are.
//
// Check fails, without a report, when current is nil, when a baseline is
// of another app (their events never meet), or when two baselines both
// declare services of current (pass one earlier release).
func Check(current *Contract, baselines ...*Contract) (*Report, error) {
	if current == nil {
		return nil, errors.New("no current contract to check")
	}
	k := &checker{cur: current, producers: map[wire][]producer{}, consumers: map[wire][]consumer{}, fixes: map[*Change]string{}}
	for _, b := range baselines {
		if b == nil {
			return nil, errors.New("a nil baseline")
		}
		name := sourceName(b)
		if b.App != current.App {
			return nil, fmt.Errorf("%s is a contract of app %q, and this is app %q: events of different apps never meet, so it cannot be a baseline (pass an export of %s)", name, b.App, current.App, current.App)
		}
		if shared := slices.DeleteFunc(slices.Clone(b.Services), func(s string) bool { return !current.hasService(s) }); len(shared) > 0 {
			if k.own != nil {
				return nil, fmt.Errorf("%s and %s both declare services of this program (%s): pass one earlier release of it", sourceName(k.own), name, strings.Join(shared, ", "))
			}
			k.own = b
		}
		k.baselines = append(k.baselines, b)
	}
	k.collect()
	k.match()
	if k.own != nil {
		k.diffTopics()
		k.diffUpcasters()
		k.diffSubscriptions()
	}
	k.attach()

	r := &Report{App: current.App, Against: []string{}, Changes: []Change{}}
	for _, b := range baselines {
		r.Against = append(r.Against, sourceName(b))
	}
	for _, c := range k.changes {
		c.Breaks = dedupe(c.Breaks)
		c.Breaking = len(c.Breaks) > 0
		if c.Breaking {
			r.Breaking++
			c.Why = fixFor(c.Kind)
			if fix, ok := k.fixes[c]; ok {
				c.Why = fix
			}
		} else {
			r.Compatible++
		}
		r.Changes = append(r.Changes, *c)
	}
	sortChanges(r.Changes)
	return r, nil
}

func sourceName(c *Contract) string {
	if c.Source != "" {
		return c.Source
	}
	return fmt.Sprintf("the contract of %s (services %s)", c.App, strings.Join(c.Services, ", "))
}

// isOwn reports whether service s of baseline b is this program's earlier
// release.
func (k *checker) isOwn(b *Contract, service string) bool {
	return b == k.own && k.cur.hasService(service)
}

// collect finds every producer and consumer of each topic version.
func (k *checker) collect() {
	for _, t := range k.cur.Topics {
		if len(t.Publishers) > 0 {
			w := wire{t.Name, t.Version}
			k.producers[w] = append(k.producers[w], producer{roleCurrent, t.Schema,
				fmt.Sprintf("what %s publishes now", strings.Join(t.Publishers, " and "))})
		}
	}
	for _, b := range k.baselines {
		for _, t := range b.Topics {
			w := wire{t.Name, t.Version}
			var own, other []string
			for _, p := range t.Publishers {
				if k.isOwn(b, p) {
					own = append(own, p)
				} else {
					other = append(other, p)
				}
			}
			if len(own) > 0 {
				k.producers[w] = append(k.producers[w], producer{rolePrevious, t.Schema,
					fmt.Sprintf("the events %s published before (%s)", strings.Join(own, " and "), sourceName(b))})
			}
			if len(other) > 0 {
				k.producers[w] = append(k.producers[w], producer{roleOther, t.Schema,
					fmt.Sprintf("what %s publishes (%s)", strings.Join(other, " and "), sourceName(b))})
			}
			if b == k.own && (len(own) > 0 || k.ownReads(t.Name)) {
				// What the earlier release's upcasters expected is the
				// best word on older events still in history.
				for _, u := range t.Upcasters {
					uw := wire{t.Name, u.From}
					k.producers[uw] = append(k.producers[uw], producer{rolePrevious, u.Schema,
						fmt.Sprintf("the %s events the earlier release read through its upcaster (%s)", uw, sourceName(b))})
				}
			}
		}
	}
	add := func(program *Contract, r role, keep func(Subscription) bool) {
		for _, s := range program.Subscriptions {
			if !keep(s) {
				continue
			}
			w := wire{s.Topic, s.Version}
			k.consumers[w] = append(k.consumers[w], consumer{role: r, program: program, sub: s, reads: s.Reads})
			if t := program.topic(s.Topic); t != nil {
				for _, u := range t.Upcasters {
					uw := wire{s.Topic, u.From}
					k.consumers[uw] = append(k.consumers[uw], consumer{role: r, program: program, sub: s, upcaster: u.From, reads: u.Schema})
				}
			}
		}
	}
	add(k.cur, roleCurrent, func(Subscription) bool { return true })
	for _, b := range k.baselines {
		add(b, roleOther, func(s Subscription) bool { return !k.isOwn(b, s.Service) })
	}
}

// ownReads reports whether the earlier release subscribed to topic with
// one of this program's services.
func (k *checker) ownReads(topic string) bool {
	return slices.ContainsFunc(k.own.Subscriptions, func(s Subscription) bool { return s.Topic == topic && k.cur.hasService(s.Service) })
}

// match checks every producer of each topic version against every
// consumer of it, where one of the two is the code being checked.
func (k *checker) match() {
	for _, w := range sortedWires(k.producers) {
		for _, p := range k.producers[w] {
			for _, c := range k.consumers[w] {
				if p.role != roleCurrent && c.role != roleCurrent {
					continue // an old matter between others
				}
				for _, pr := range satisfies(p.schema, c.reads, "") {
					k.issues = append(k.issues, &issue{w: w, p: pr, prod: p, cons: c})
				}
			}
		}
	}
}

func (k *checker) change(c Change) *Change {
	k.changes = append(k.changes, &c)
	return &c
}

// ownPublished returns the earlier release's topic of that name if one of
// this program's services published it then.
func (k *checker) ownPublished(name string) *Topic {
	t := k.own.topic(name)
	if t == nil || !slices.ContainsFunc(t.Publishers, func(p string) bool { return k.isOwn(k.own, p) }) {
		return nil
	}
	return t
}

func (k *checker) diffTopics() {
	names := map[string]bool{}
	for _, t := range k.own.Topics {
		if k.ownPublished(t.Name) != nil {
			names[t.Name] = true
		}
	}
	for _, t := range k.cur.Topics {
		if len(t.Publishers) > 0 {
			names[t.Name] = true
		}
	}
	for _, name := range sortedKeys(names) {
		before := k.ownPublished(name)
		now := k.cur.topic(name)
		if now != nil && len(now.Publishers) == 0 {
			now = nil
		}
		switch {
		case before != nil && now != nil && before.Version == now.Version:
			w := wire{name, now.Version}
			for _, e := range diffSchemas(before.Schema, now.Schema) {
				c := k.change(Change{Topic: w.String(), Kind: e.kind, Path: e.path, From: e.from, Detail: e.detail})
				if e.kind == FieldRemoved || e.kind == FieldRenamed {
					k.readersBroken(c, w, orString(e.from, e.path), now.Publishers)
				}
			}
		case before != nil && now != nil:
			k.versionRemoved(wire{name, before.Version}, now)
			k.change(Change{Topic: wire{name, now.Version}.String(), Kind: VersionAdded, Detail: fmt.Sprintf("published instead of v%d", before.Version)})
		case before != nil:
			k.versionRemoved(wire{name, before.Version}, nil)
		default:
			k.change(Change{Topic: wire{name, now.Version}.String(), Kind: TopicAdded, Detail: "published by " + strings.Join(now.Publishers, " and ")})
		}
	}
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readersBroken adds to c every consumer of w (other than through an
// upcaster) that reads path, which the producers no longer send.
func (k *checker) readersBroken(c *Change, w wire, path string, publishers []string) {
	for _, cons := range k.consumers[w] {
		if cons.upcaster == 0 && hasPath(cons.reads, path) {
			c.Breaks = append(c.Breaks, cons.broken(fmt.Sprintf("reads %s, which %s no longer sends", path, strings.Join(publishers, " and "))))
		}
	}
}

// versionRemoved records that this program no longer publishes topic
// version w (now is the version it publishes instead, or nil).
func (k *checker) versionRemoved(w wire, now *Topic) {
	c := k.change(Change{Topic: w.String(), Kind: TopicRemoved, Detail: "no longer published"})
	if now != nil {
		c.Kind, c.Detail = VersionRemoved, fmt.Sprintf("v%d is published instead", now.Version)
	}
	// Other programs that read w and not the new version are left with
	// nothing to read.
	for _, cons := range k.consumers[w] {
		if cons.role != roleOther || cons.upcaster > 0 {
			continue
		}
		if now != nil && readsVersion(cons.program, now.Name, now.Version) {
			continue
		}
		problem := fmt.Sprintf("reads %s, which is no longer published", w)
		if now != nil {
			problem = fmt.Sprintf("reads %s, and only v%d is published now", w, now.Version)
		}
		c.Breaks = append(c.Breaks, cons.broken(problem))
	}
	// Events of w already published wait in backlogs, history and dead
	// letters: this program's subscriptions must still read them.
	var through []string
	for _, s := range k.cur.Subscriptions {
		if s.Topic != w.topic {
			continue
		}
		if readsVersion(k.cur, w.topic, w.version) {
			through = append(through, s.Ref())
			continue
		}
		cons := consumer{role: roleCurrent, program: k.cur, sub: s}
		c.Breaks = append(c.Breaks, cons.broken(fmt.Sprintf("reads %s; the %s events already published would be dead-lettered as an unknown version", transport.WireType(s.Topic, s.Version), w)))
	}
	switch {
	case len(through) > 0 && now != nil:
		c.Why = fmt.Sprintf("events already published are read through the upcaster from v%d (%s); no other program reads %s alone", w.version, strings.Join(through, ", "), w)
	case len(through) > 0:
		c.Why = fmt.Sprintf("only this program reads it (%s), from other publishers or the events already published", strings.Join(through, ", "))
	default:
		c.Why = "no consumer reads it"
	}
}

// readsVersion reports whether program reads version v of topic: as its
// version, or through an upcaster.
func readsVersion(program *Contract, topic string, v int) bool {
	t := program.topic(topic)
	if t == nil || !slices.ContainsFunc(program.Subscriptions, func(s Subscription) bool { return s.Topic == topic }) {
		return false
	}
	return t.Version == v || slices.ContainsFunc(t.Upcasters, func(u Upcaster) bool { return u.From == v })
}

func (k *checker) diffUpcasters() {
	for _, now := range k.cur.Topics {
		before := k.own.topic(now.Name)
		if before == nil {
			before = &Topic{}
		}
		for _, u := range now.Upcasters {
			w := wire{now.Name, u.From}
			i := slices.IndexFunc(before.Upcasters, func(b Upcaster) bool { return b.From == u.From })
			if i < 0 {
				k.change(Change{Topic: w.String(), Kind: UpcasterAdded, Detail: fmt.Sprintf("read as %s and converted to v%d", orString(u.GoType, "an older type"), now.Version)})
				continue
			}
			for _, e := range diffSchemas(before.Upcasters[i].Schema, u.Schema) {
				c := k.change(Change{Topic: w.String(), Kind: e.kind, Path: e.path, From: e.from, Detail: "in the upcaster's type: " + e.detail})
				k.fixes[c] = fmt.Sprintf("make the type the upcaster from v%d decodes read the %s events already published", u.From, w)
			}
		}
		for _, b := range before.Upcasters {
			if slices.ContainsFunc(now.Upcasters, func(u Upcaster) bool { return u.From == b.From }) {
				continue
			}
			w := wire{now.Name, b.From}
			c := k.change(Change{Topic: w.String(), Kind: UpcasterRemoved, Detail: fmt.Sprintf("%s events are no longer read", w)})
			for _, s := range k.cur.Subscriptions {
				if s.Topic == now.Name && now.Version != b.From {
					cons := consumer{role: roleCurrent, program: k.cur, sub: s}
					c.Breaks = append(c.Breaks, cons.broken(fmt.Sprintf("%s events still in backlogs, history or dead letters would be dead-lettered as an unknown version", w)))
				}
			}
			c.Why = "no subscription of this program reads the topic"
		}
	}
}

func (k *checker) diffSubscriptions() {
	before := map[string]Subscription{}
	for _, s := range k.own.Subscriptions {
		if k.cur.hasService(s.Service) {
			before[s.Ref()] = s
		}
	}
	now := map[string]Subscription{}
	for _, s := range k.cur.Subscriptions {
		now[s.Ref()] = s
	}
	for _, ref := range sortedKeys(now) {
		s := now[ref]
		if b, ok := before[ref]; !ok || b.Topic != s.Topic {
			k.change(Change{Topic: transport.WireType(s.Topic, s.Version), Kind: SubscriptionAdded, Subscription: ref, Why: "a new reader; its needs are checked against every producer"})
		}
	}
	for _, ref := range sortedKeys(before) {
		s := before[ref]
		if n, ok := now[ref]; !ok || n.Topic != s.Topic {
			k.change(Change{Topic: transport.WireType(s.Topic, s.Version), Kind: SubscriptionRemoved, Subscription: ref, Why: "a reader leaving breaks no producer"})
		}
	}
}

// causes lists the kinds of issue a change of each kind can be the cause
// of. Issues inside the changed field are matched to the change.
var causes = map[Kind][]Kind{
	FieldRemoved:       {FieldMissing},
	FieldRenamed:       {FieldMissing},
	FieldAdded:         {FieldMissing},
	RequiredFieldAdded: {FieldMissing},
	MadeRequired:       {MadeOptional},
	MadeOptional:       {MadeOptional},
	MadeNullable:       {MadeNullable},
	MadeNonNullable:    {MadeNullable},
	EnumNarrowed:       {EnumWidened},
	EnumWidened:        {EnumWidened},
	ConstChanged:       {ConstChanged},
	TypeChanged:        {TypeChanged, FieldMissing, MadeOptional, MadeNullable, EnumWidened, ConstChanged},
}

// attach gives each issue to the changes that caused it; the rest become
// changes of their own: problems between this program and another that no
// change explains (there is no earlier release to compare with, or the
// other program changed).
func (k *checker) attach() {
	// Changes to fields first, then what joined; an issue left over on a
	// version no longer published goes to that change last.
	var ordered []*Change
	for _, c := range k.changes {
		if c.Kind != VersionRemoved {
			ordered = append(ordered, c)
		}
	}
	for _, c := range k.changes {
		if c.Kind == VersionRemoved {
			ordered = append(ordered, c)
		}
	}
	for _, c := range ordered {
		kinds, fieldLevel := causes[c.Kind]
		for _, is := range k.issues {
			if is.w.String() != c.Topic {
				continue
			}
			switch {
			case fieldLevel:
				if !slices.Contains(kinds, is.p.kind) || !(within(is.p.path, c.Path) || c.From != "" && within(is.p.path, c.From)) {
					continue
				}
			case c.Kind == SubscriptionAdded:
				if is.cons.role != roleCurrent || is.cons.sub.Ref() != c.Subscription {
					continue
				}
			case c.Kind == TopicAdded || c.Kind == VersionAdded || c.Kind == UpcasterAdded || c.Kind == VersionRemoved:
				if is.used {
					continue
				}
			default:
				continue
			}
			is.used = true
			c.Breaks = append(c.Breaks, is.broken())
		}
		if len(c.Breaks) == 0 && c.Why == "" {
			c.Why = k.compatibleWhy(c)
		}
	}
	type key struct {
		w    wire
		path string
		kind Kind
	}
	standalone := map[key]*Change{}
	for _, is := range k.issues {
		if is.used {
			continue
		}
		kk := key{is.w, is.p.path, is.p.kind}
		c := standalone[kk]
		if c == nil {
			c = k.change(Change{Topic: is.w.String(), Kind: is.p.kind, Path: is.p.path, Detail: "a consumer's needs are not met"})
			standalone[kk] = c
		}
		c.Breaks = append(c.Breaks, is.broken())
	}
}

// compatibleWhy says why a change that breaks no one is compatible.
func (k *checker) compatibleWhy(c *Change) string {
	switch c.Kind {
	case TopicAdded, VersionAdded:
		return "new: no consumer depended on it before"
	case UpcasterAdded:
		return "the program reads more than before"
	case FieldAdded:
		return "optional: readers of older events get the zero value, and readers that do not know it ignore it"
	}
	var readers []string
	for _, cons := range k.consumers[parseWire(c.Topic)] {
		if cons.role == rolePrevious {
			continue
		}
		if hasPath(cons.reads, c.Path) || c.From != "" && hasPath(cons.reads, c.From) {
			readers = appendUnique(readers, cons.broken("").Subscription)
		}
	}
	if len(readers) == 0 {
		return "no consumer reads it"
	}
	return "its readers accept it (" + strings.Join(readers, ", ") + ")"
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func parseWire(t string) wire {
	name, v, err := transport.ParseType(t)
	if err != nil {
		return wire{}
	}
	return wire{name, v}
}

// hasPath reports whether schema s has the field at path (dotted JSON
// names, lists and maps stepped through); "" is the whole value.
func hasPath(s *topology.Schema, path string) bool {
	if s == nil {
		return false
	}
	if path == "" {
		return true
	}
	for name := range strings.SplitSeq(path, ".") {
		for s.Properties[name] == nil && (s.Items != nil || s.AdditionalProperties != nil) {
			if s.Items != nil {
				s = s.Items
			} else {
				s = s.AdditionalProperties
			}
		}
		next := s.Properties[name]
		if next == nil {
			return false
		}
		s = next
	}
	return true
}

func sortedWires[V any](m map[wire]V) []wire {
	out := make([]wire, 0, len(m))
	for w := range m {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].version < out[j].version
	})
	return out
}

// dedupe keeps the first problem of each consumer, sorted by contract
// and subscription.
func dedupe(bs []Broken) []Broken {
	type who struct{ sub, contract string }
	seen := map[who]bool{}
	var out []Broken
	for _, b := range bs {
		if w := (who{b.Subscription, b.Contract}); !seen[w] {
			seen[w] = true
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Contract != out[j].Contract {
			return out[i].Contract < out[j].Contract
		}
		return out[i].Subscription < out[j].Subscription
	})
	return out
}
