package journal_test

import (
	"context"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/troupetest"
)

// BenchmarkPublish publishes on the embedded broker with and without the
// journal, to show what the journal adds to the publish path (its writes
// run beside it, in batches).
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []journal.Option // nil: no journal
	}{
		{"plain", nil},
		{"journal", []journal.Option{}},
		{"journal-nodelay", []journal.Option{journal.FlushDelay(0)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			app := troupe.New(troupetest.Config(b, troupe.Config{Name: "jbench"}))
			app.Service("orders").Publishes(topicOrderPlaced)
			troupe.Subscribe(app.Service("audit"), topicOrderPlaced, "log", func(context.Context, troupe.Event[orderPlaced]) error { return nil })
			var w *journal.Writer
			if c.opts != nil {
				w = journal.Install(app, c.opts...)
			}
			troupetest.Start(b, app)
			ctx := app.Context(context.Background())
			b.ResetTimer()
			for b.Loop() {
				if err := troupe.Publish(ctx, topicOrderPlaced, orderPlaced{OrderID: "o"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if w != nil {
				b.ReportMetric(float64(w.Stats().Dropped), "dropped")
			}
		})
	}
}
