package topology

import (
	"encoding"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Schema is a JSON Schema (the draft-07 subset that AsyncAPI 3.0 schemas
// build on) of a topic's payload, generated from its Go type by [SchemaOf].
// The zero Schema, {}, allows any value.
type Schema struct {
	// Type is the JSON type, or types: a nullable value has "null" as its
	// second type. It encodes as a string when there is one.
	Type SchemaType `json:"type,omitempty"`
	// Format is "date-time" for time.Time.
	Format string `json:"format,omitempty"`
	// ContentEncoding is "base64" for []byte.
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// Const is the one value a string may have.
	Const string `json:"const,omitempty"`
	// Enum lists the values a type that implements [Enumerated] may have,
	// as JSON values (strings, numbers, booleans; null for a nullable one),
	// in the order EnumValues gives them. Empty: no such limit.
	Enum []any `json:"enum,omitempty"`
	// Description says what the value is.
	Description string `json:"description,omitempty"`
	// Properties are an object's fields, by their JSON name.
	Properties map[string]*Schema `json:"properties,omitempty"`
	// Required are the properties that are always present, sorted.
	Required []string `json:"required,omitempty"`
	// AdditionalProperties is the schema of a map's values.
	AdditionalProperties *Schema `json:"additionalProperties,omitempty"`
	// Items is the schema of an array's elements.
	Items *Schema `json:"items,omitempty"`
}

// SchemaType is the "type" of a [Schema]: one JSON type ("string"), or
// several (["string", "null"]).
type SchemaType []string

// MarshalJSON encodes one type as a string and several as an array.
func (t SchemaType) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]string(t))
}

// UnmarshalJSON decodes a string or an array of strings.
func (t *SchemaType) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = SchemaType{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*t = many
	return err
}

// Enumerated is implemented by a type whose values form a closed set, the
// way Go writes an enum (a named string or integer type and its
// constants):
//
//	type Status string
//
//	func (Status) EnumValues() []any { return []any{Placed, Paid, Shipped} }
//
// [SchemaOf] lists the values as the schema's enum, so that readers of the
// schema (a contract check among them) know the set and can tell a value
// added from one removed. EnumValues is called on the type's zero value (or
// a pointer to it); each value is written as encoding/json writes it. A
// value that does not encode is left out.
type Enumerated interface {
	EnumValues() []any
}

var (
	enumerated        = reflect.TypeFor[Enumerated]()
	timeType          = reflect.TypeFor[time.Time]()
	jsonMarshaler     = reflect.TypeFor[json.Marshaler]()
	textMarshaler     = reflect.TypeFor[encoding.TextMarshaler]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	byteSliceElemKind = reflect.Uint8
)

// SchemaOf returns the JSON Schema of the JSON that encoding/json writes for
// a value of type t (troupe encodes payloads with encoding/json):
//
//   - a struct is an object whose properties are its exported fields, named
//     and skipped by their json tags as encoding/json does (embedded structs
//     are inlined); a field is required unless tagged omitempty or
//     omitzero, and a ",string" field is a string;
//   - strings, booleans, integers and floats are "string", "boolean",
//     "integer" and "number";
//   - time.Time is a "date-time" string; other types that implement
//     encoding.TextMarshaler are strings, and other json.Marshalers (and
//     interfaces) may be anything: {};
//   - slices are arrays ([]byte is a base64 string), maps are objects with
//     additionalProperties; both are nullable, as Go writes a nil one as
//     null, and so are pointers;
//   - a type that implements [Enumerated] lists its values as the enum
//     (with null too when the value is nullable).
//
// A type that contains itself is described where it recurs by {} with a
// description naming it. It returns {} for a nil t.
func SchemaOf(t reflect.Type) *Schema {
	if t == nil {
		return &Schema{}
	}
	return (&schemaGen{seen: map[reflect.Type]bool{}}).schema(t)
}

type schemaGen struct {
	seen map[reflect.Type]bool // structs being generated, to stop at cycles
}

func (g *schemaGen) schema(t reflect.Type) *Schema {
	s := g.shape(t)
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		s.Enum = enumValues(t)
	}
	return s
}

// enumValues returns the JSON values of an [Enumerated] type t, nil for
// other types.
func enumValues(t reflect.Type) []any {
	var e Enumerated
	switch {
	case t.Implements(enumerated):
		e, _ = reflect.Zero(t).Interface().(Enumerated)
	case reflect.PointerTo(t).Implements(enumerated):
		e, _ = reflect.New(t).Interface().(Enumerated)
	}
	if e == nil {
		return nil
	}
	var out []any
	for _, v := range e.EnumValues() {
		// As JSON writes it, and as a schema read from a file holds it
		// (strings, float64 numbers, booleans).
		b, err := json.Marshal(v)
		if err != nil {
			continue
		}
		var j any
		if json.Unmarshal(b, &j) == nil {
			out = append(out, j)
		}
	}
	return out
}

func (g *schemaGen) shape(t reflect.Type) *Schema {
	switch {
	case t == timeType:
		return &Schema{Type: SchemaType{"string"}, Format: "date-time"}
	case t == rawMessageType:
		return &Schema{}
	case t.Kind() != reflect.Pointer && (t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler)):
		return &Schema{Description: "encoded by " + t.String() + ".MarshalJSON"}
	case t.Kind() != reflect.Pointer && (t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)):
		return &Schema{Type: SchemaType{"string"}}
	}
	switch t.Kind() {
	case reflect.Bool:
		return &Schema{Type: SchemaType{"boolean"}}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return &Schema{Type: SchemaType{"integer"}}
	case reflect.Float32, reflect.Float64:
		return &Schema{Type: SchemaType{"number"}}
	case reflect.String:
		return &Schema{Type: SchemaType{"string"}}
	case reflect.Pointer:
		return nullable(g.schema(t.Elem()))
	case reflect.Slice:
		if t.Elem().Kind() == byteSliceElemKind && !implementsAny(t.Elem()) {
			return &Schema{Type: SchemaType{"string", "null"}, ContentEncoding: "base64"}
		}
		return &Schema{Type: SchemaType{"array", "null"}, Items: g.schema(t.Elem())}
	case reflect.Array:
		return &Schema{Type: SchemaType{"array"}, Items: g.schema(t.Elem())}
	case reflect.Map:
		return &Schema{Type: SchemaType{"object", "null"}, AdditionalProperties: g.schema(t.Elem())}
	case reflect.Struct:
		return g.object(t)
	}
	// Interfaces hold anything; channels, functions and complex numbers do
	// not encode (troupe.NewTopic refuses them).
	return &Schema{}
}

func implementsAny(t reflect.Type) bool {
	return t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) ||
		t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)
}

// nullable adds "null" to s's types, and to its enum when it has one; {}
// stays {}, as it allows null.
func nullable(s *Schema) *Schema {
	if len(s.Type) == 0 {
		return s
	}
	for _, ty := range s.Type {
		if ty == "null" {
			return s
		}
	}
	s.Type = append(s.Type, "null")
	if len(s.Enum) > 0 {
		s.Enum = append(s.Enum, nil)
	}
	return s
}

func (g *schemaGen) object(t reflect.Type) *Schema {
	if g.seen[t] {
		return &Schema{Description: "a " + t.String() + " (recursive)"}
	}
	g.seen[t] = true
	defer delete(g.seen, t)

	s := &Schema{Type: SchemaType{"object"}}
	for _, f := range jsonFields(t) {
		fs := g.schema(f.typ)
		if f.quoted {
			fs = quoted(fs)
		}
		if s.Properties == nil {
			s.Properties = map[string]*Schema{}
		}
		s.Properties[f.name] = fs
		if !f.optional {
			s.Required = append(s.Required, f.name)
		}
	}
	sort.Strings(s.Required)
	return s
}

// quoted is the schema of a ",string" field: encoding/json writes strings,
// booleans and numbers (and pointers to them) inside a JSON string.
func quoted(s *Schema) *Schema {
	if len(s.Type) == 0 || s.Format != "" || s.ContentEncoding != "" {
		return s
	}
	switch s.Type[0] {
	case "string", "boolean", "integer", "number":
		out := &Schema{Type: SchemaType{"string"}, Description: "a JSON " + s.Type[0] + " in a string"}
		if len(s.Type) > 1 {
			out.Type = append(out.Type, "null")
		}
		return out
	}
	return s
}

type jsonField struct {
	name     string
	typ      reflect.Type
	optional bool // omitempty or omitzero
	quoted   bool // ",string"
	tagged   bool // named by its tag
	depth    int  // of embedding
}

// jsonFields returns the fields encoding/json writes for struct type t, in
// their order, with its rules for embedded structs: a field at a shallower
// depth hides deeper ones of the same name; of fields at the same depth, the
// one named by a tag wins, and if that does not decide, none is written.
func jsonFields(t reflect.Type) []jsonField {
	var all []jsonField
	var walk func(t reflect.Type, depth int, visited map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, visited map[reflect.Type]bool) {
		if visited[t] {
			return
		}
		visited[t] = true
		defer delete(visited, t)
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if !sf.IsExported() && et.Kind() != reflect.Struct {
					continue
				}
				if name == "" && et.Kind() == reflect.Struct {
					walk(et, depth+1, visited)
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			f := jsonField{name: name, typ: ft, depth: depth, tagged: name != ""}
			if name == "" {
				f.name = sf.Name
			}
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "omitempty", "omitzero":
					f.optional = true
				case "string":
					f.quoted = true
				}
			}
			all = append(all, f)
		}
	}
	walk(t, 0, map[reflect.Type]bool{})

	byName := map[string][]int{}
	for i, f := range all {
		byName[f.name] = append(byName[f.name], i)
	}
	var out []jsonField
	for i, f := range all {
		idx := byName[f.name]
		if len(idx) == 1 {
			out = append(out, f)
			continue
		}
		if dominant(all, idx) == i {
			out = append(out, f)
		}
	}
	return out
}

// dominant returns which of the fields all[idx...] of one name encoding/json
// writes, or -1 if none.
func dominant(all []jsonField, idx []int) int {
	minDepth := all[idx[0]].depth
	for _, i := range idx {
		minDepth = min(minDepth, all[i].depth)
	}
	var top, tagged []int
	for _, i := range idx {
		if all[i].depth == minDepth {
			top = append(top, i)
			if all[i].tagged {
				tagged = append(tagged, i)
			}
		}
	}
	switch {
	case len(top) == 1:
		return top[0]
	case len(tagged) == 1:
		return tagged[0]
	}
	return -1
}
