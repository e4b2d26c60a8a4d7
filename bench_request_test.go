package troupe_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// BenchmarkRequest measures the round trip of troupe.Request on the
// embedded broker: publish a request, a handler in the same app publishes
// the outcome, the tap hands it back. It reports the latency percentiles
// of b.N requests, sequentially (inflight=1) and 16 at a time.
//
//	go test -run '^$' -bench Request -benchtime 5000x .
func BenchmarkRequest(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(map[int]string{1: "inflight=1", 16: "inflight=16"}[inflight], func(b *testing.B) {
			app := benchApp(b, troupe.Config{}, func(a *troupe.App, s *troupe.Service) {
				a.Service("api").Publishes(testRegister)
				users := a.Service("users").Publishes(testRegistered, testRegFailed)
				troupe.Subscribe(users, testRegister, "register", func(ctx context.Context, ev troupe.Event[registration]) error {
					return troupe.Publish(ctx, testRegistered, registered{UserID: ev.Data.Email})
				}, troupe.Emits(testRegistered), troupe.Concurrency(32))
			})
			ctx := app.Context(context.Background())
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			next := make(chan int, b.N)
			for i := range b.N {
				next <- i
			}
			close(next)
			b.ResetTimer()
			for range inflight {
				wg.Go(func() {
					for i := range next {
						start := time.Now()
						rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						_, err := troupe.Request(rctx, testRegister, registration{Email: "x@y"}, testRegistered)
						cancel()
						if err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(start)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
