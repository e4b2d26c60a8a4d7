package natsjs

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// The broker URLs of this driver, registered when the package is
// imported:
//
//	embedded:                          in-process NATS JetStream, files in the app's data dir (troupe's default)
//	embedded:?listen=127.0.0.1:4222    the same, also reachable by other processes and the nats CLI
//	embedded:?sync=always              fsync every write before confirming (sync=1s: every second, the default)
//	nats://host:4222                   an external NATS server with JetStream enabled (tls:// for TLS)
//	nats://h1:4222,nats://h2:4222,nats://h3:4222?replicas=3
//	                                   a JetStream cluster, each stream kept on 3 servers
func init() {
	transport.RegisterScheme(transport.Scheme{
		Names:    []string{"embedded"},
		Examples: []string{"embedded:", "embedded:?listen=127.0.0.1:4222", "embedded:?sync=always"},
		Open:     openEmbeddedURL,
	})
	transport.RegisterScheme(transport.Scheme{
		Names:    []string{"nats", "tls"},
		Examples: []string{"nats://host:4222", "nats://h1:4222,nats://h2:4222?replicas=3"},
		Open:     openURL,
	})
}

// openEmbeddedURL starts the embedded server an "embedded:" URL
// describes, in env.DataDir.
func openEmbeddedURL(ctx context.Context, raw string, env transport.Env) (transport.Transport, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("natsjs: broker URL: %v (example: embedded:?listen=127.0.0.1:4222)", err)
	}
	q := u.Query()
	ecfg := EmbeddedConfig{DataDir: env.DataDir, Listen: q.Get("listen")}
	switch s := q.Get("sync"); s {
	case "", "interval":
	case "always":
		ecfg.SyncAlways = true
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("natsjs: broker URL %q: sync=%q: use always or a duration such as 1s", raw, s)
		}
		ecfg.SyncInterval = d
	}
	t, err := OpenEmbedded(ctx, ecfg, Config{Namespace: env.Namespace, Logger: env.Logger})
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if l := t.Server().ClientURL(); l != "" && env.Logger != nil {
		env.Logger.Info("embedded broker listening", "url", l)
	}
	return t, nil
}

// openURL connects to the external server, or cluster, a nats:// or tls://
// URL names. Options ride in the query after the last server of a
// comma-separated list; the client gets the servers alone.
func openURL(ctx context.Context, raw string, env transport.Env) (transport.Transport, error) {
	cfg := Config{Namespace: env.Namespace, Logger: env.Logger}
	servers := raw
	if i := strings.LastIndex(raw, "?"); i >= 0 {
		servers = raw[:i]
		q, err := url.ParseQuery(raw[i+1:])
		if err != nil {
			return nil, fmt.Errorf("natsjs: broker URL %q: options: %v", redact(raw), err)
		}
		if r := q.Get("replicas"); r != "" {
			n, err := strconv.Atoi(r)
			if err != nil || n < 1 || n > 5 {
				return nil, fmt.Errorf("natsjs: broker URL %q: replicas=%q: use 1 to 5 (the copies of each stream in a JetStream cluster)", redact(raw), r)
			}
			cfg.Replicas = n
		}
	}
	return Connect(ctx, servers, cfg)
}
