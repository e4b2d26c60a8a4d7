package rabbitmq

import (
	"context"

	"github.com/troupe-go/troupe/transport"
)

// The broker URLs of this driver, registered when the package is
// imported: amqp://user:pass@host:5672/vhost, and amqps:// for TLS.
func init() {
	transport.RegisterScheme(transport.Scheme{
		Names:    []string{"amqp", "amqps"},
		Examples: []string{"amqp://user:pass@host:5672/vhost"},
		Open: func(ctx context.Context, url string, env transport.Env) (transport.Transport, error) {
			return Connect(ctx, url, Config{Namespace: env.Namespace, Logger: env.Logger})
		},
	})
}
