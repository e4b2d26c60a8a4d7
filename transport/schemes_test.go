package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/troupe-go/troupe/transport"
)

func TestOpenByScheme(t *testing.T) {
	var got transport.Env
	var gotURL string
	transport.RegisterScheme(transport.Scheme{
		Names:    []string{"ttfake", "ttfakes"},
		Examples: []string{"ttfake://host"},
		Open: func(_ context.Context, url string, env transport.Env) (transport.Transport, error) {
			gotURL, got = url, env
			return nil, errors.New("fake driver opens nothing")
		},
	})
	env := transport.Env{Namespace: "shop", DataDir: "/tmp/shop"}
	if _, err := transport.Open(t.Context(), "ttfakes://u:secret@host", env); err == nil || gotURL != "ttfakes://u:secret@host" || got != env {
		t.Errorf("Open: %v; the driver got %q, %+v", err, gotURL, got)
	}
	_, err := transport.Open(t.Context(), "kafka://u:secret@host:9092", env)
	if !errors.Is(err, transport.ErrUnknownScheme) || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "ttfake://host") {
		t.Errorf("unknown scheme: %v; want ErrUnknownScheme, the registered examples, and no password", err)
	}
	if _, err := transport.Open(t.Context(), "localhost", env); !errors.Is(err, transport.ErrUnknownScheme) {
		t.Errorf("no scheme: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a scheme registered twice did not panic")
			}
		}()
		transport.RegisterScheme(transport.Scheme{Names: []string{"ttfake"}, Open: func(context.Context, string, transport.Env) (transport.Transport, error) { return nil, nil }})
	}()
}
