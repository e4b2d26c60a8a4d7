// Package transporttest is the conformance suite every troupe transport must
// pass. It checks the delivery contract of package transport against a real
// broker: durable subscriptions, fan-out, competing consumers, retries with
// backoff, dead letters and their replay and how the two interplay, bad
// input (malformed, oversized, misrouted) and the wire format, publisher
// confirms, draining stops that hand back what they fetched at once, dead
// letters the broker refuses, load, and isolation between namespaces.
//
// What a transport offers beyond the contract it claims in
// [Harness.Features], in the manner of the capability flags of Watermill's
// universal Pub/Sub tests: ordered subscriptions, history for
// StartAtBeginning, taps, lag and the journal. The suite tests each claimed
// feature, skips the others, and fails a harness that implements a
// feature's interface without claiming it.
//
// A transport author writes a [Harness] that opens transports on a broker
// started for the test, and calls [Run] from an ordinary test function:
//
//	func TestConformance(t *testing.T) {
//		srv := startBroker(t) // stopped with t.Cleanup
//		transporttest.Run(t, transporttest.Harness{
//			Open: func(t testing.TB, namespace string) transport.Transport {
//				tr, err := mybroker.Open(srv.URL(), namespace)
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { tr.Close(context.Background()) })
//				return tr
//			},
//			PublishRaw: func(t testing.TB, namespace, topic string, headers map[string]string, body []byte) {
//				// publish with the broker's own client, no checks
//			},
//			Kill: func(t testing.TB, tr transport.Transport) {
//				// cut tr's connection without settling anything
//			},
//			Features: transporttest.Features{Lag: true},
//		})
//	}
//
// Each subtest works in a namespace of its own, so the suite can share one
// broker with other tests. Most subtests run in parallel (bounded by go test's
// -parallel flag); they are grouped under the subtest "Contract", so Run
// returns only after all of them finished and a harness may stop its broker
// with defer as well as with t.Cleanup. The load test
// "ConcurrentPublish10k" runs alone after the group. A single subtest is
// selected with, for example:
//
//	go test ./transport/natsjs -run 'Conformance/Contract/Replay$'
//
// The suite keeps timing tight: leases of one or two seconds and backoffs of
// tens of milliseconds, so it runs in well under a minute. Where it must show
// that something does not happen (no redelivery after an ack, no fan-out on
// replay), it watches for a few leases, the time after which a broker would
// have redelivered.
package transporttest
