package troupe

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/troupe-go/troupe/transport"
)

// Topic is a named, versioned stream of events carrying values of type T,
// encoded as JSON. The name and version, not the Go type, identify it on the
// wire (as the CloudEvents type "<name>.v<version>"), so renaming T never
// orphans events in flight.
//
// Declare topics once, as package-level variables in the package of the
// service that publishes them, and share them with subscribers:
//
//	var OrderPlaced = troupe.NewTopic[OrderPlacedV1]("order_placed", 1)
type Topic[T any] struct {
	name    string
	version int
	err     error
	up      map[int]func([]byte) (T, error) // upcasters by older version
	upFrom  map[int]reflect.Type            // the Go type each upcaster decodes
	key     func(T) string                  // ordering key, set by OrderBy
}

// NewTopic declares a topic. name is a letter followed by letters, digits,
// '_' or '-' (it becomes a NATS subject token and an AMQP routing-key word);
// version starts at 1. A bad name or version, or a T that JSON cannot encode
// (a channel or a function), is reported when the app starts, with the fix.
func NewTopic[T any](name string, version int) *Topic[T] {
	t := &Topic[T]{name: name, version: version}
	switch {
	case !transport.ValidName(name):
		t.err = fmt.Errorf("topic %q: name must be a letter followed by letters, digits, '_' or '-' (at most 128)", name)
	case version < 1:
		t.err = fmt.Errorf("topic %q: version %d: versions start at 1", name, version)
	default:
		var zero T
		if _, err := json.Marshal(zero); err != nil {
			t.err = fmt.Errorf("topic %q: type %s cannot be encoded as JSON (%v): use a struct of plain fields", name, reflect.TypeFor[T](), err)
		}
	}
	return t
}

// Name returns the topic's stable name.
func (t *Topic[T]) Name() string { return t.name }

// Version returns the version of T that this program publishes and reads.
func (t *Topic[T]) Version() int { return t.version }

// Type returns the wire type, "<name>.v<version>".
func (t *Topic[T]) Type() string { return transport.WireType(t.name, t.version) }

// GoType returns the Go type of the topic's data, for schema generators.
func (t *Topic[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

// String returns the wire type.
func (t *Topic[T]) String() string { return t.Type() }

func (t *Topic[T]) encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrEncode, t.Type(), err)
	}
	return b, nil
}

func (t *Topic[T]) decode(d *transport.Delivery) (T, error) {
	var v T
	_, version, err := d.Topic()
	if err != nil {
		return v, err
	}
	if ct := d.DataContentType; ct != "" && ct != transport.ContentTypeJSON && ct != "application/json; charset=utf-8" {
		return v, fmt.Errorf("%w: content-type %q, want %s", ErrMalformed, ct, transport.ContentTypeJSON)
	}
	// Decoding uses the json/v2 implementation (the standard library's next
	// encoding/json) for speed: about three to five times faster than
	// encoding/json here, which is the larger part of handling an event. It
	// matches names case-insensitively, as encoding/json does, and is
	// stricter about invalid UTF-8 and duplicate names, which dead-letters
	// such events as malformed instead of guessing.
	if version != t.version {
		up, ok := t.up[version]
		if !ok {
			return v, fmt.Errorf("%w: %s, this program reads %s%s", ErrUnknownVersion, d.Type, t.Type(), t.upcastable())
		}
		return up(d.Data)
	}
	if err := decodeJSON(d.Data, &v); err != nil {
		return v, fmt.Errorf("%w: data of %s does not decode into %s: %v", ErrMalformed, d.Type, reflect.TypeFor[T](), err)
	}
	return v, nil
}

func decodeJSON(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, jsonv2.MatchCaseInsensitiveNames(true))
}

func (t *Topic[T]) upcastable() string {
	if len(t.up) == 0 {
		return ""
	}
	return fmt.Sprintf(" and upcasts v%v", t.Versions()[:len(t.up)])
}

// Versions returns the versions the topic reads, ascending: those with an
// upcaster, then the current one.
func (t *Topic[T]) Versions() []int {
	out := make([]int, 0, len(t.up)+1)
	for v := range t.up {
		out = append(out, v)
	}
	slices.Sort(out)
	return append(out, t.version)
}

// UpcastType returns the Go type that events of the older version from are
// decoded into before their upcaster ([Upcast]) turns them into T: what the
// program still expects of those events. It returns nil when the topic has
// no upcaster from that version. Contract checks use it.
func (t *Topic[T]) UpcastType(from int) reflect.Type { return t.upFrom[from] }

// Ordered reports whether the topic has an ordering key ([OrderBy]).
func (t *Topic[T]) Ordered() bool { return t.key != nil }

// OrderingKey returns the ordering key of v ([OrderBy]); "" when the topic
// has none.
func (t *Topic[T]) OrderingKey(v T) string {
	if t.key == nil {
		return ""
	}
	return t.key(v)
}

// OrderBy gives topic t an ordering key: every subscription to t handles
// the events of one key (an order id, an account id) one at a time and in
// the order they were published, even with several processes running the
// service, while events of different keys run in parallel. Events whose key
// is "" are not ordered. Declare it next to the topic, before the app
// starts:
//
//	var OrderStatus = troupe.NewTopic[OrderStatusV1]("order_status", 1)
//
//	func init() { troupe.OrderBy(OrderStatus, func(e OrderStatusV1) string { return e.OrderID }) }
//
// The key travels as the CloudEvents partitionkey attribute. Order has a
// price, which is why it is not the default: one process of the service is
// active for the subscription at a time (the others stand by and take over
// within a couple of leases if it dies), and a failing event is retried in
// place, holding up the later events of its key until it succeeds or is
// dead-lettered. Handlers of ordered subscriptions should still be
// idempotent: after a crash, the events the dead process held are
// delivered again, in order.
func OrderBy[T any](t *Topic[T], key func(T) string) {
	t.key = key
}

// Upcast teaches topic t to read events of an older version: they are
// decoded as Old and turned into the current T by f before any handler sees
// them, so handlers deal with one type while old events are still in
// flight, in dead letters or in history. Declare it next to the topic,
// once per older version, before the app starts:
//
//	var OrderPlaced = troupe.NewTopic[OrderPlacedV2]("order_placed", 2)
//
//	func init() { troupe.Upcast(OrderPlaced, 1, orderPlacedFromV1) }
//
// f may chain older converters itself (v1 → v2 → v3). An error from f, or
// data that does not decode as Old, dead-letters the event as malformed;
// a version with no upcaster is dead-lettered as unknown. Publishing always
// writes the current version. A from that is not older than the current
// version is reported when the app starts.
func Upcast[Old, T any](t *Topic[T], from int, f func(Old) (T, error)) {
	if from < 1 || from >= t.version {
		if t.err == nil {
			t.err = fmt.Errorf("topic %q: Upcast from version %d: upcasters read older versions, 1 to %d", t.name, from, t.version-1)
		}
		return
	}
	if t.up == nil {
		t.up = make(map[int]func([]byte) (T, error))
		t.upFrom = make(map[int]reflect.Type)
	}
	t.upFrom[from] = reflect.TypeFor[Old]()
	t.up[from] = func(data []byte) (T, error) {
		var old Old
		var zero T
		wire := transport.WireType(t.name, from)
		if err := decodeJSON(data, &old); err != nil {
			return zero, fmt.Errorf("%w: data of %s does not decode into %s: %v", ErrMalformed, wire, reflect.TypeFor[Old](), err)
		}
		v, err := f(old)
		if err != nil {
			return zero, fmt.Errorf("%w: upcasting %s to v%d: %v", ErrMalformed, wire, t.version, err)
		}
		return v, nil
	}
}

func (t *Topic[T]) info() topicInfo {
	return topicInfo{name: t.name, version: t.version, goType: reflect.TypeFor[T](), err: t.err}
}

// AnyTopic is any *Topic[T]; it lets one call declare topics of different
// types, as in Service.Publishes.
type AnyTopic interface {
	Name() string
	Version() int
	Type() string
	Versions() []int
	UpcastType(from int) reflect.Type
	Ordered() bool
	GoType() reflect.Type
	info() topicInfo
}

type topicInfo struct {
	name    string
	version int
	goType  reflect.Type
	err     error
}
