package contract

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/topology"
)

var (
	readsMu sync.Mutex
	reads   = map[*troupe.Subscription][]string{}
)

// Reads declares the fields of the event data that sub's handler actually
// needs, and returns sub, so that it wraps a Subscribe call:
//
//	contract.Reads(troupe.Subscribe(billing, OrderPlaced, "charge", charge),
//		"order_id", "total_cents", "customer.email")
//
// A field is named by its JSON name; a dot steps into an object, and lists
// and maps are stepped through ("items.sku" is the sku of every item).
// Naming an object takes all of it. With no fields, the handler needs the
// event's arrival and nothing of its data.
//
// Without a declaration, a subscription is taken to need every field of
// its handler's type: the safe default, since nothing else says which of
// them the handler uses. The declaration narrows that, so a producer may
// stop sending a field that no consumer reads, and [Check] stops it when
// one does. It cannot widen it: a field the type does not have, or a path
// through a field that is not an object, makes [FromApp] (and so the
// contract export) fail with an error naming the subscription and the
// fields there are. Declaring twice keeps the last declaration. Reads
// panics on a nil subscription.
func Reads(sub *troupe.Subscription, fields ...string) *troupe.Subscription {
	if sub == nil {
		panic("contract.Reads: nil subscription")
	}
	readsMu.Lock()
	defer readsMu.Unlock()
	reads[sub] = append([]string{}, fields...)
	return sub
}

// declaredReads returns the fields declared for sub with Reads, and
// whether there is a declaration.
func declaredReads(sub *troupe.Subscription) ([]string, bool) {
	readsMu.Lock()
	defer readsMu.Unlock()
	f, ok := reads[sub]
	return f, ok
}

// prune returns the part of schema s that the field paths name: every
// object keeps only the properties on a path (and their place in
// required), lists and maps are stepped through, and a path that ends at a
// value keeps all of it. It fails for a path that leaves the schema.
func prune(s *topology.Schema, fields []string) (*topology.Schema, error) {
	paths := make([][]string, 0, len(fields))
	for _, f := range fields {
		if f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
			return nil, fmt.Errorf("field %q: name fields by their JSON names, with a dot between levels (customer.email)", f)
		}
		paths = append(paths, strings.Split(f, "."))
	}
	return pruneAt(s, paths, "")
}

func pruneAt(s *topology.Schema, paths [][]string, at string) (*topology.Schema, error) {
	for _, p := range paths {
		if len(p) == 0 {
			return s, nil // the whole value is read
		}
	}
	out := *s
	out.Properties, out.Required, out.Items, out.AdditionalProperties = nil, nil, nil, nil
	switch {
	case s.Items != nil:
		items, err := pruneAt(s.Items, paths, at)
		if err != nil {
			return nil, err
		}
		out.Items = items
		return &out, nil
	case s.AdditionalProperties != nil:
		values, err := pruneAt(s.AdditionalProperties, paths, at)
		if err != nil {
			return nil, err
		}
		out.AdditionalProperties = values
		return &out, nil
	case len(s.Properties) == 0:
		what := "a value without fields"
		if len(s.Type) > 0 {
			what = "a " + strings.Join(s.Type, " or ")
		}
		return nil, fmt.Errorf("field %q: %s is %s", joinPath(at, paths[0][0]), describeAt(at), what)
	}
	byName := map[string][][]string{}
	var names []string
	for _, p := range paths {
		if _, seen := byName[p[0]]; !seen {
			names = append(names, p[0])
		}
		byName[p[0]] = append(byName[p[0]], p[1:])
	}
	sort.Strings(names)
	out.Properties = map[string]*topology.Schema{}
	for _, name := range names {
		child, ok := s.Properties[name]
		if !ok {
			return nil, fmt.Errorf("field %q: %s has no field %q (it has %s)", joinPath(at, name), describeAt(at), name, strings.Join(sortedKeys(s.Properties), ", "))
		}
		pruned, err := pruneAt(child, byName[name], joinPath(at, name))
		if err != nil {
			return nil, err
		}
		out.Properties[name] = pruned
		if slices.Contains(s.Required, name) {
			out.Required = append(out.Required, name)
		}
	}
	return &out, nil
}

func describeAt(path string) string {
	if path == "" {
		return "the event data"
	}
	return fmt.Sprintf("%q", path)
}

// joinPath appends a field name to a path of dotted JSON names.
func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
