package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Scheme is a driver's broker URL scheme: how an app that names its broker
// by URL (Config.Broker, --broker) opens a transport. A driver registers
// its schemes with [RegisterScheme] when its package is imported; the app
// builds no driver config of its own.
type Scheme struct {
	// Names are the URL schemes, without the colon ("nats", "tls").
	// Required.
	Names []string
	// Examples are URLs with their options, one per line as the usage text
	// of --broker and the errors about broker URLs show them, such as
	// "nats://host:4222?replicas=3".
	Examples []string
	// Open opens a transport for url, whose scheme is one of Names, for the
	// app described by env. The transport is the app's to close. Errors
	// must not show the URL's password. Required.
	Open func(ctx context.Context, url string, env Env) (Transport, error)
}

// Env is what an app tells a driver that opens its broker.
type Env struct {
	// Namespace scopes the app's streams, queues and subjects on the
	// broker: the app's name.
	Namespace string
	// DataDir is where a broker that runs in the process keeps its files
	// (Config.DataDir, --data).
	DataDir string
	// Logger is the app's logger.
	Logger *slog.Logger
}

var (
	schemesMu sync.RWMutex
	schemes   = map[string]Scheme{}
	schemeSeq []Scheme // in registration order, for usage texts
)

// RegisterScheme makes s available to [Open]. It panics when a name is
// empty or taken, or Open is nil: registration happens in a driver's init,
// where such a mistake is a programming error.
func RegisterScheme(s Scheme) {
	if len(s.Names) == 0 || s.Open == nil {
		panic("transport: RegisterScheme needs Names and Open")
	}
	schemesMu.Lock()
	defer schemesMu.Unlock()
	for _, n := range s.Names {
		if n == "" || strings.ContainsAny(n, ":/") {
			panic(fmt.Sprintf("transport: RegisterScheme: bad scheme name %q", n))
		}
		if _, dup := schemes[n]; dup {
			panic(fmt.Sprintf("transport: scheme %q registered twice", n))
		}
	}
	for _, n := range s.Names {
		schemes[n] = s
	}
	schemeSeq = append(schemeSeq, s)
}

// ErrUnknownScheme marks a broker URL whose scheme no imported driver
// registered.
var ErrUnknownScheme = errors.New("unknown broker scheme")

// Open opens the transport of a broker URL through the driver that
// registered its scheme. It fails with an error wrapping
// [ErrUnknownScheme] that lists the registered examples, or with the
// driver's error; no error shows the URL's password.
func Open(ctx context.Context, rawURL string, env Env) (Transport, error) {
	scheme, _, found := strings.Cut(rawURL, ":")
	schemesMu.RLock()
	s, ok := schemes[strings.ToLower(scheme)]
	schemesMu.RUnlock()
	switch {
	case !found || scheme == "":
		return nil, fmt.Errorf("%w: broker URL %q has no scheme: use %s", ErrUnknownScheme, RedactURL(rawURL), exampleList())
	case !ok:
		return nil, fmt.Errorf("%w %q in %q: use %s (a driver registers its scheme when its package is imported)",
			ErrUnknownScheme, scheme, RedactURL(rawURL), exampleList())
	}
	return s.Open(ctx, rawURL, env)
}

// Examples returns the example URLs of every registered scheme, sorted by
// scheme.
func Examples() []string {
	schemesMu.RLock()
	seq := slices.Clone(schemeSeq)
	schemesMu.RUnlock()
	slices.SortFunc(seq, func(a, b Scheme) int { return strings.Compare(a.Names[0], b.Names[0]) })
	var out []string
	for _, s := range seq {
		out = append(out, s.Examples...)
	}
	return out
}

func exampleList() string {
	ex := Examples()
	if len(ex) == 0 {
		return "a scheme a driver registers (no driver is imported)"
	}
	return strings.Join(slices.Compact(ex), ", ")
}

// RedactURL hides the password of a broker URL, for logs and errors. An
// URL it cannot parse loses everything between "://" and its last '@'.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx@" + raw[i+1:]
			}
		}
		return raw
	}
	return u.Redacted()
}
