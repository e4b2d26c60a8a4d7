package troupetest

import (
	"context"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// PublishLog records the wire type ("order_placed.v1") of every event an app
// publishes, on whatever broker it runs, from its handlers, its HTTP routes
// and app.Context alike. It is the witness a test needs that a request
// published nothing, or exactly the events it should. Safe for concurrent
// use.
type PublishLog struct {
	mu    sync.Mutex
	types []string
}

// RecordPublishes installs a middleware on app that records its publishes.
// Call it before the app starts (middlewares added later are ignored).
// Events are recorded as they go to the broker, whether or not the broker
// then accepts them.
func RecordPublishes(app *troupe.App) *PublishLog {
	p := &PublishLog{}
	app.Use(troupe.Middleware{Name: "troupetest-record-publishes", Publish: func(next troupe.PublishFunc) troupe.PublishFunc {
		return func(ctx context.Context, msgs []*transport.Message) error {
			p.mu.Lock()
			for _, m := range msgs {
				p.types = append(p.types, m.Type)
			}
			p.mu.Unlock()
			return next(ctx, msgs)
		}
	}})
	return p
}

// Taken returns the types published since the last call, in order, and
// forgets them; nil when there were none.
func (p *PublishLog) Taken() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.types
	p.types = nil
	return out
}
