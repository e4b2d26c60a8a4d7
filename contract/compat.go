package contract

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/troupe-go/troupe/topology"
)

// problem is one way a producer's events fail what a consumer reads.
type problem struct {
	path string
	kind Kind
	// text says what the consumer meets, with %[1]s where the producer's
	// events are named ("what orders publishes now").
	text string
}

// satisfies lists how events that match producer schema p fail consumer
// schema c, the schema of what a handler reads. The consumer asks, and
// the producer must give:
//
//   - each property c requires, as required in p;
//   - values of a type c accepts (an integer is a number), null only
//     where c accepts null, c's format and content encoding where c has
//     one, c's const where it has one, and only values of c's enum where
//     it has one;
//   - the same, recursively, for objects, list items and map values.
//
// A consumer schema of {} accepts anything. Descriptions do not matter.
func satisfies(p, c *topology.Schema, path string) []problem {
	var out []problem
	satisfiesAt(p, c, path, &out)
	return out
}

func satisfiesAt(p, c *topology.Schema, path string, out *[]problem) {
	if c == nil || isAny(c) {
		return
	}
	add := func(kind Kind, format string, args ...any) {
		*out = append(*out, problem{path: path, kind: kind, text: fmt.Sprintf(format, args...)})
	}
	name := path
	if name == "" {
		name = "the data"
	}
	if p == nil {
		add(FieldMissing, "reads %s, missing from %%[1]s", name)
		return
	}
	pt, pNull := splitNull(p.Type)
	ct, cNull := splitNull(c.Type)
	if len(ct) > 0 {
		if len(pt) == 0 {
			add(TypeChanged, "reads %s as %s, any JSON value in %%[1]s", name, typeList(ct))
			return
		}
		for _, t := range pt {
			if !accepts(ct, t) {
				add(TypeChanged, "reads %s as %s, %s in %%[1]s", name, typeList(ct), typeList(pt))
				return
			}
		}
		if pNull && !cNull {
			add(MadeNullable, "does not accept null in %s, allowed in %%[1]s", name)
		}
	}
	if c.Format != "" && p.Format != c.Format {
		add(TypeChanged, "reads %s as %s, %s in %%[1]s", name, orNone("format", c.Format), orNone("format", p.Format))
	}
	if c.ContentEncoding != "" && p.ContentEncoding != c.ContentEncoding {
		add(TypeChanged, "reads %s as %s, %s in %%[1]s", name, orNone("encoding", c.ContentEncoding), orNone("encoding", p.ContentEncoding))
	}
	if c.Const != "" && p.Const != c.Const {
		add(ConstChanged, "reads %s as only %q, %s in %%[1]s", name, c.Const, orNone("const", p.Const))
	}
	if cv := nonNullValues(c.Enum); len(cv) > 0 {
		pv := nonNullValues(p.Enum)
		if len(pv) == 0 && p.Const != "" {
			pv = []any{p.Const}
		}
		if len(pv) == 0 {
			add(EnumWidened, "reads %s as one of %s, any value in %%[1]s", name, values(cv))
		} else if extra := missingValues(pv, cv); len(extra) > 0 {
			add(EnumWidened, "reads %s as one of %s; %%[1]s may send %s", name, values(cv), values(extra))
		}
	}
	for _, field := range sortedKeys(c.Properties) {
		fp := joinPath(path, field)
		pp, ok := p.Properties[field]
		if !ok && p.AdditionalProperties != nil {
			satisfiesAt(p.AdditionalProperties, c.Properties[field], fp, out)
			continue
		}
		if !ok {
			// A field the consumer reads as optional may be absent; a
			// producer that stops sending it is caught by comparing it
			// with its earlier release (Check), not here.
			if slices.Contains(c.Required, field) {
				*out = append(*out, problem{path: fp, kind: FieldMissing, text: fmt.Sprintf("requires %s, missing from %%[1]s", fp)})
			}
			continue
		}
		if slices.Contains(c.Required, field) && !slices.Contains(p.Required, field) {
			*out = append(*out, problem{path: fp, kind: MadeOptional, text: fmt.Sprintf("requires %s, optional in %%[1]s", fp)})
		}
		satisfiesAt(pp, c.Properties[field], fp, out)
	}
	if c.Items != nil {
		satisfiesAt(orAny(p.Items), c.Items, path, out)
	}
	if c.AdditionalProperties != nil {
		if p.AdditionalProperties == nil && len(p.Properties) > 0 {
			for _, field := range sortedKeys(p.Properties) {
				satisfiesAt(p.Properties[field], c.AdditionalProperties, joinPath(path, field), out)
			}
		} else {
			satisfiesAt(orAny(p.AdditionalProperties), c.AdditionalProperties, path, out)
		}
	}
}

// isAny reports whether s accepts every value: {} (a description aside).
func isAny(s *topology.Schema) bool {
	return len(s.Type) == 0 && s.Format == "" && s.ContentEncoding == "" && s.Const == "" && len(s.Enum) == 0 &&
		len(s.Properties) == 0 && s.Items == nil && s.AdditionalProperties == nil
}

func orAny(s *topology.Schema) *topology.Schema {
	if s == nil {
		return &topology.Schema{}
	}
	return s
}

// splitNull returns the types other than "null", and whether "null" is
// one of them.
func splitNull(types topology.SchemaType) ([]string, bool) {
	var out []string
	null := false
	for _, t := range types {
		if t == "null" {
			null = true
		} else {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, null
}

// accepts reports whether a reader of the JSON types in ct accepts a value
// of type t: an integer is a number too.
func accepts(ct []string, t string) bool {
	return slices.Contains(ct, t) || t == "integer" && slices.Contains(ct, "number")
}

func typeList(types []string) string {
	if len(types) == 0 {
		return "any JSON value"
	}
	return strings.Join(types, " or ")
}

func orNone(what, v string) string {
	if v == "" {
		return "no " + what
	}
	return what + " " + v
}

// enumKey is how enum values compare: by their JSON text.
func enumKey(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func nonNullValues(vs []any) []any {
	var out []any
	for _, v := range vs {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

// missingValues returns the values of vs that are not in of.
func missingValues(vs, of []any) []any {
	have := map[string]bool{}
	for _, v := range of {
		have[enumKey(v)] = true
	}
	var out []any
	for _, v := range vs {
		if !have[enumKey(v)] {
			out = append(out, v)
		}
	}
	return out
}

func values(vs []any) string {
	keys := make([]string, len(vs))
	for i, v := range vs {
		keys[i] = enumKey(v)
	}
	return strings.Join(keys, ", ")
}
