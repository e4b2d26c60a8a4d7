package troupe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// Broker URLs understood by Config.Broker and --broker:
//
//	embedded:                          in-process NATS JetStream, data in DataDir (the default)
//	embedded:?listen=127.0.0.1:4222    the same, also reachable by other processes and the nats CLI
//	embedded:?sync=always              fsync every write before confirming (default: every second)
//	nats://host:4222                   an external NATS server with JetStream enabled
//	nats://h1:4222,nats://h2:4222,nats://h3:4222?replicas=3
//	                                   a JetStream cluster, each stream kept on 3 servers
//	amqp://user:pass@host:5672/vhost   RabbitMQ (amqps:// for TLS)
func (a *App) openBroker(ctx context.Context) (transport.Transport, error) {
	raw := a.brokerURL()
	scheme, _, _ := strings.Cut(raw, ":")
	u, err := url.Parse(raw)
	if err != nil && scheme != "nats" && scheme != "tls" {
		// url.Error repeats the whole URL, password included: keep its cause only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("troupe: broker URL %q: %v (examples: embedded:, nats://127.0.0.1:4222, amqp://user:pass@host:5672/)", redactURL(raw), err)
	}
	cfg := natsjs.Config{Namespace: a.cfg.Name, Logger: a.log}
	switch scheme {
	case "embedded":
		q := u.Query()
		ecfg := natsjs.EmbeddedConfig{DataDir: a.dataDir(), Listen: q.Get("listen")}
		switch s := q.Get("sync"); s {
		case "", "interval":
		case "always":
			ecfg.SyncAlways = true
		default:
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("troupe: broker URL %q: sync=%q: use always or a duration such as 1s", raw, s)
			}
			ecfg.SyncInterval = d
		}
		t, err := natsjs.OpenEmbedded(ctx, ecfg, cfg)
		if err != nil {
			return nil, fmt.Errorf("troupe: embedded broker: %w", err)
		}
		if l := t.Server().ClientURL(); l != "" {
			a.log.Info("embedded broker listening", "url", l)
		}
		return t, nil
	case "nats", "tls":
		// Options ride in the query of the URL (after the last server of a
		// comma-separated list); the client gets the servers alone.
		servers := raw
		if i := strings.LastIndex(raw, "?"); i >= 0 {
			servers = raw[:i]
			q, err := url.ParseQuery(raw[i+1:])
			if err != nil {
				return nil, fmt.Errorf("troupe: broker URL %q: options: %v", redactURL(raw), err)
			}
			if r := q.Get("replicas"); r != "" {
				n, err := strconv.Atoi(r)
				if err != nil || n < 1 || n > 5 {
					return nil, fmt.Errorf("troupe: broker URL %q: replicas=%q: use 1 to 5 (the copies of each stream in a JetStream cluster)", redactURL(raw), r)
				}
				cfg.Replicas = n
			}
		}
		t, err := natsjs.Connect(ctx, servers, cfg)
		if err != nil {
			return nil, fmt.Errorf("troupe: %w", err)
		}
		return t, nil
	case "amqp", "amqps":
		t, err := rabbitmq.Connect(ctx, raw, rabbitmq.Config{Namespace: a.cfg.Name, Logger: a.log})
		if err != nil {
			return nil, fmt.Errorf("troupe: %w", err)
		}
		return t, nil
	case "":
		return nil, fmt.Errorf("troupe: broker URL %q has no scheme: use embedded:, nats://host:4222 or amqp://user:pass@host:5672/", redactURL(raw))
	}
	return nil, fmt.Errorf("troupe: unknown broker scheme %q in %q: use embedded: (default), nats://host:4222 or amqp://user:pass@host:5672/", scheme, redactURL(raw))
}

// redactURL hides the password of a broker URL, for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: cut anything between the scheme and an '@'.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx@" + raw[i+1:]
			}
		}
		return raw
	}
	return u.Redacted()
}
