package topology

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Formats lists the formats of [Graph.Render], the first being the default.
var Formats = []string{"mermaid", "dot", "json", "asyncapi"}

// Render writes the graph in format, one of [Formats].
func (g *Graph) Render(w io.Writer, format string) error {
	switch format {
	case "mermaid":
		return g.Mermaid(w)
	case "dot":
		return g.DOT(w)
	case "json":
		return g.JSON(w)
	case "asyncapi":
		return g.AsyncAPI(w)
	}
	return fmt.Errorf("topology: unknown format %q: use one of %s", format, strings.Join(Formats, ", "))
}

// JSON writes the graph as an indented JSON object with the field names of
// the struct tags of [Graph] and the types it holds:
//
//	{"app": "shop",
//	 "services":      [{"id", "name", "routes", "publishes", "subscriptions"}],
//	 "topics":        [{"id", "name", "version", "type", "goType", "goPackage", "schema", "publishers", "external"}],
//	 "subscriptions": [{"id", "service", "name", "topic", "emits",
//	                    "retry": {"maxAttempts", "minBackoff", "maxBackoff", "deadline"}, "deadLetters"}],
//	 "deadLetters":   [{"id", "subscription"}],
//	 "edges":         [{"from", "to", "kind", "attempts"}]}
//
// Durations are strings as Go writes them ("500ms"); lists are never null.
// "attempts" appears on "dead-letters" edges only. "schema" is the JSON
// Schema of the topic's data (see [Schema]).
func (g *Graph) JSON(w io.Writer) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Mermaid writes the graph as a Mermaid flowchart ("flowchart LR"), for
// Markdown on GitHub, GitLab and most documentation tools:
//
//   - services are boxes, labelled with their name and HTTP routes;
//   - topics are stadiums labelled with their wire type ("order_placed.v1");
//   - subscriptions are subroutine boxes ([[name]]) between the topic they
//     handle and the service that handles it;
//   - a subscription's emits edge, labelled "emits", leads to the topic its
//     handler publishes: which event leads to which;
//   - dead-letter stores are cylinders, reached by a dotted edge labelled
//     "after N attempts";
//   - publishers outside the app are one flag-shaped node.
//
// A service's publishes edge to a topic that one of its subscriptions emits
// is left out: the emits edge already draws it. Node IDs are derived from
// the names with every character outside [A-Za-z0-9] escaped, so every
// valid name is a valid, distinct Mermaid ID.
func (g *Graph) Mermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("flowchart LR\n")
	var classes [4][]string // service, topic, subscription, dead letters
	if g.hasExternal() {
		p("    %s>%s]\n", mermaidID(ExternalID), mermaidLabel("outside the app"))
	}
	for _, s := range g.Services {
		id := mermaidID(s.ID)
		p("    %s[%s]\n", id, mermaidLabel(append([]string{s.Name}, s.Routes...)...))
		classes[0] = append(classes[0], id)
	}
	for _, t := range g.Topics {
		id := mermaidID(t.ID)
		p("    %s([%s])\n", id, mermaidLabel(t.Type))
		classes[1] = append(classes[1], id)
	}
	for _, s := range g.Subscriptions {
		id := mermaidID(s.ID)
		p("    %s[[%s]]\n", id, mermaidLabel(s.Name))
		classes[2] = append(classes[2], id)
	}
	for _, d := range g.DeadLetters {
		id := mermaidID(d.ID)
		p("    %s[(%s)]\n", id, mermaidLabel("dead letters", strings.TrimPrefix(d.Subscription, "subscription:")))
		classes[3] = append(classes[3], id)
	}
	implied := g.implied()
	for _, e := range g.Edges {
		if implied[e] {
			continue
		}
		from, to := mermaidID(e.From), mermaidID(e.To)
		switch e.Kind {
		case Emits:
			p("    %s -->|emits| %s\n", from, to)
		case DeadLetters:
			p("    %s -.->|%s| %s\n", from, attemptsLabel(e.Attempts), to)
		case Compensates:
			p("    %s ==>|on failure| %s\n", from, to)
		case Undeclared:
			p("    %s -.->|undeclared| %s\n", from, to)
		default:
			p("    %s --> %s\n", from, to)
		}
	}
	p("    classDef service fill:#e8f0fe,stroke:#1a73e8\n")
	p("    classDef topic fill:#fef7e0,stroke:#f9ab00\n")
	p("    classDef subscription fill:#f1f3f4,stroke:#5f6368\n")
	p("    classDef deadletters fill:#fce8e6,stroke:#d93025\n")
	for i, name := range []string{"service", "topic", "subscription", "deadletters"} {
		if len(classes[i]) > 0 {
			p("    class %s %s\n", strings.Join(classes[i], ","), name)
		}
	}
	return bw.Flush()
}

// DOT writes the graph as a Graphviz digraph, laid out left to right, with
// the same shapes as [Graph.Mermaid] (services boxes, topics rounded boxes,
// subscriptions components, dead-letter stores cylinders reached by dashed
// edges labelled "after N attempts"). Node IDs are the graph's IDs, quoted.
// Render it with `dot -Tsvg`.
func (g *Graph) DOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("digraph %s {\n", dotQuote(g.App))
	p("    rankdir=LR;\n")
	p("    node [fontname=\"Helvetica\"];\n")
	p("    edge [fontname=\"Helvetica\", fontsize=10];\n")
	if g.hasExternal() {
		p("    %s [shape=cds, label=%s];\n", dotQuote(ExternalID), dotQuote("outside the app"))
	}
	for _, s := range g.Services {
		p("    %s [shape=box, style=filled, fillcolor=\"#e8f0fe\", label=%s];\n", dotQuote(s.ID), dotQuote(append([]string{s.Name}, s.Routes...)...))
	}
	for _, t := range g.Topics {
		p("    %s [shape=box, style=\"rounded,filled\", fillcolor=\"#fef7e0\", label=%s];\n", dotQuote(t.ID), dotQuote(t.Type))
	}
	for _, s := range g.Subscriptions {
		p("    %s [shape=component, label=%s];\n", dotQuote(s.ID), dotQuote(s.Name))
	}
	for _, d := range g.DeadLetters {
		p("    %s [shape=cylinder, style=filled, fillcolor=\"#fce8e6\", label=%s];\n", dotQuote(d.ID), dotQuote("dead letters", strings.TrimPrefix(d.Subscription, "subscription:")))
	}
	implied := g.implied()
	for _, e := range g.Edges {
		if implied[e] {
			continue
		}
		from, to := dotQuote(e.From), dotQuote(e.To)
		switch e.Kind {
		case Emits:
			p("    %s -> %s [label=\"emits\"];\n", from, to)
		case DeadLetters:
			p("    %s -> %s [style=dashed, color=\"#d93025\", label=%s];\n", from, to, dotQuote(attemptsLabel(e.Attempts)))
		case Compensates:
			p("    %s -> %s [style=bold, color=\"#d93025\", label=\"on failure\"];\n", from, to)
		case Undeclared:
			p("    %s -> %s [style=dotted, color=\"#f9ab00\", label=\"undeclared\"];\n", from, to)
		default:
			p("    %s -> %s;\n", from, to)
		}
	}
	p("}\n")
	return bw.Flush()
}

func (g *Graph) hasExternal() bool {
	for _, t := range g.Topics {
		if t.External {
			return true
		}
	}
	return false
}

func attemptsLabel(n int) string {
	if n == 1 {
		return "after 1 attempt"
	}
	return fmt.Sprintf("after %d attempts", n)
}

// mermaidID turns a node ID into a Mermaid node ID: the kind becomes a
// short prefix ("svc_", "topic_", "sub_", "dlq_"), letters and digits stay,
// and every other character becomes an escape starting with '_' ("_" → "__",
// ":" → "_c", "." → "_d", "-" → "_h", others "_xHH_"), so distinct IDs stay
// distinct and no ID is a Mermaid keyword such as "end".
func mermaidID(id string) string {
	var b strings.Builder
	for _, k := range []struct{ kind, prefix string }{
		{"service:", "svc_"}, {"topic:", "topic_"}, {"subscription:", "sub_"}, {"dead-letters:", "dlq_"},
	} {
		if rest, ok := strings.CutPrefix(id, k.kind); ok {
			b.WriteString(k.prefix)
			id = rest
			break
		}
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '_':
			b.WriteString("__")
		case r == ':':
			b.WriteString("_c")
		case r == '.':
			b.WriteString("_d")
		case r == '-':
			b.WriteString("_h")
		default:
			fmt.Fprintf(&b, "_x%X_", r)
		}
	}
	return b.String()
}

// mermaidLabel quotes lines as one Mermaid label, with entity codes for the
// characters that would end or confuse it.
func mermaidLabel(lines ...string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "#", "#35;")
	esc := make([]string, len(lines))
	for i, l := range lines {
		esc[i] = r.Replace(l)
	}
	return `"` + strings.Join(esc, "<br/>") + `"`
}

// dotQuote quotes lines as one DOT string, one line each.
func dotQuote(lines ...string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	esc := make([]string, len(lines))
	for i, l := range lines {
		esc[i] = r.Replace(l)
	}
	return `"` + strings.Join(esc, `\n`) + `"`
}
