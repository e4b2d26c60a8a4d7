package troupe

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/troupe-go/troupe/transport"
)

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

func indent(err error) error {
	return errors.New("  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
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
