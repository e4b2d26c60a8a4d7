package troupe

import (
	"context"
	"fmt"

	"github.com/troupe-go/troupe/transport"
	_ "github.com/troupe-go/troupe/transport/drivers" // the bundled brokers' URL schemes
)

// openBroker opens the transport of the app's broker URL through the
// driver that registered its scheme (see transport.RegisterScheme): the
// bundled ones are embedded: (the default), nats://, tls://, amqp:// and
// amqps://; their packages document their options.
func (a *App) openBroker(ctx context.Context) (transport.Transport, error) {
	tr, err := transport.Open(ctx, a.brokerURL(), transport.Env{Namespace: a.cfg.Name, DataDir: a.dataDir(), Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("troupe: %w", err)
	}
	return tr, nil
}
