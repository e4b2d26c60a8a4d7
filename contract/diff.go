package contract

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/troupe-go/troupe/topology"
)

// edit is one difference between two schemas of the same topic version.
type edit struct {
	path   string
	from   string // the old path of a renamed field
	kind   Kind
	detail string
}

// diffSchemas lists what changed from schema a to schema b, field by
// field. A field removed and another added in the same object with the
// same schema and the same presence are taken for a rename. Once a value's
// type changes, what is inside it is not compared further.
func diffSchemas(a, b *topology.Schema) []edit {
	var out []edit
	diffAt(orAny(a), orAny(b), "", &out)
	return out
}

func diffAt(a, b *topology.Schema, path string, out *[]edit) {
	add := func(kind Kind, format string, args ...any) {
		*out = append(*out, edit{path: path, kind: kind, detail: fmt.Sprintf(format, args...)})
	}
	at, aNull := splitNull(a.Type)
	bt, bNull := splitNull(b.Type)
	if !slices.Equal(at, bt) {
		add(TypeChanged, "%s → %s", typeList(at), typeList(bt))
		return
	}
	switch {
	case len(bt) > 0 && aNull && !bNull:
		add(MadeNonNullable, "null no longer allowed")
	case len(bt) > 0 && !aNull && bNull:
		add(MadeNullable, "may be null")
	}
	if a.Format != b.Format {
		add(TypeChanged, "%s → %s", orNone("format", a.Format), orNone("format", b.Format))
	}
	if a.ContentEncoding != b.ContentEncoding {
		add(TypeChanged, "%s → %s", orNone("encoding", a.ContentEncoding), orNone("encoding", b.ContentEncoding))
	}
	if a.Const != b.Const {
		add(ConstChanged, "%s → %s", orNone("const", a.Const), orNone("const", b.Const))
	}
	av, bv := nonNullValues(a.Enum), nonNullValues(b.Enum)
	switch {
	case len(av) == 0 && len(bv) > 0:
		add(EnumNarrowed, "now limited to %s", values(bv))
	case len(av) > 0 && len(bv) == 0:
		add(EnumWidened, "no longer limited to %s", values(av))
	case len(av) > 0:
		if gone := missingValues(av, bv); len(gone) > 0 {
			add(EnumNarrowed, "%s removed", values(gone))
		}
		if added := missingValues(bv, av); len(added) > 0 {
			add(EnumWidened, "%s added", values(added))
		}
	}
	diffProperties(a, b, path, out)
	if a.Items != nil || b.Items != nil {
		diffAt(orAny(a.Items), orAny(b.Items), path, out)
	}
	if a.AdditionalProperties != nil || b.AdditionalProperties != nil {
		diffAt(orAny(a.AdditionalProperties), orAny(b.AdditionalProperties), path, out)
	}
}

func diffProperties(a, b *topology.Schema, path string, out *[]edit) {
	var removed, added []string
	for _, name := range sortedKeys(a.Properties) {
		if _, ok := b.Properties[name]; !ok {
			removed = append(removed, name)
			continue
		}
		fp := joinPath(path, name)
		ar, br := slices.Contains(a.Required, name), slices.Contains(b.Required, name)
		switch {
		case !ar && br:
			*out = append(*out, edit{path: fp, kind: MadeRequired, detail: "always sent now"})
		case ar && !br:
			*out = append(*out, edit{path: fp, kind: MadeOptional, detail: "may be left out now"})
		}
		diffAt(a.Properties[name], b.Properties[name], fp, out)
	}
	for _, name := range sortedKeys(b.Properties) {
		if _, ok := a.Properties[name]; !ok {
			added = append(added, name)
		}
	}
	renamedTo := map[string]bool{}
	for _, old := range removed {
		i := slices.IndexFunc(added, func(name string) bool {
			return !renamedTo[name] && sameSchema(a.Properties[old], b.Properties[name]) &&
				slices.Contains(a.Required, old) == slices.Contains(b.Required, name)
		})
		if i < 0 {
			*out = append(*out, edit{path: joinPath(path, old), kind: FieldRemoved, detail: describe(a.Properties[old], slices.Contains(a.Required, old))})
			continue
		}
		renamedTo[added[i]] = true
		*out = append(*out, edit{path: joinPath(path, added[i]), from: joinPath(path, old), kind: FieldRenamed, detail: "renamed from " + joinPath(path, old)})
	}
	for _, name := range added {
		if renamedTo[name] {
			continue
		}
		kind := FieldAdded
		if slices.Contains(b.Required, name) {
			kind = RequiredFieldAdded
		}
		*out = append(*out, edit{path: joinPath(path, name), kind: kind, detail: describe(b.Properties[name], kind == RequiredFieldAdded)})
	}
}

// describe says what a field is, for a report: "required string".
func describe(s *topology.Schema, required bool) string {
	presence := "optional"
	if required {
		presence = "required"
	}
	t, null := splitNull(s.Type)
	what := typeList(t)
	switch {
	case len(t) == 1 && t[0] == "object" && s.AdditionalProperties != nil:
		what = "map"
	case len(t) == 1 && t[0] == "array":
		what = "list"
	}
	if s.Format != "" {
		what += " (" + s.Format + ")"
	}
	if null {
		what += " or null"
	}
	return presence + " " + what
}

// sameSchema reports whether two schemas describe the same values, their
// descriptions aside.
func sameSchema(a, b *topology.Schema) bool {
	return canonical(a) == canonical(b)
}

func canonical(s *topology.Schema) string {
	b, _ := json.Marshal(stripDescriptions(s))
	return string(b)
}

func stripDescriptions(s *topology.Schema) *topology.Schema {
	if s == nil {
		return nil
	}
	c := *s
	c.Description = ""
	c.Items = stripDescriptions(s.Items)
	c.AdditionalProperties = stripDescriptions(s.AdditionalProperties)
	if s.Properties != nil {
		c.Properties = map[string]*topology.Schema{}
		for k, v := range s.Properties {
			c.Properties[k] = stripDescriptions(v)
		}
	}
	return &c
}

// within reports whether path is p or a field inside it.
func within(path, p string) bool {
	return p == "" || path == p || strings.HasPrefix(path, p+".")
}
