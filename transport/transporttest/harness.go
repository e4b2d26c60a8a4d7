package transporttest

import (
	"testing"

	"github.com/troupe-go/troupe/transport"
)

// Harness connects the suite to one broker.
type Harness struct {
	// Open returns a new transport connected to the broker, scoped to namespace.
	// Two transports opened with the same namespace act as two processes of one
	// app (same subscriptions, same dead letters); different namespaces never see
	// each other's events. Open registers the transport's Close with t.Cleanup;
	// the suite closes some transports itself and kills others, so that Close
	// must be harmless on a transport already closed or killed.
	Open func(t testing.TB, namespace string) transport.Transport
	// PublishRaw publishes a message as a foreign client would, bypassing every
	// check of the transport: headers as given (may lack ce- attributes), body
	// as given (may be larger than a subscription accepts), routed to where
	// events of topic `topic` go.
	PublishRaw func(t testing.TB, namespace, topic string, headers map[string]string, body []byte)
	// Kill drops tr's broker connection at once, as if its process died with
	// kill -9: no ack, no nak, no drain. Handlers still running may go on but
	// can settle nothing.
	Kill func(t testing.TB, tr transport.Transport)
	// BreakDeadLetters makes the broker refuse to store the dead letters
	// of sub in namespace (as a full or missing dead-letter store would)
	// until repair is called. Optional: without it the suite skips the
	// test that a dead letter the broker refuses is not lost.
	BreakDeadLetters func(t testing.TB, namespace string, sub transport.SubscriptionRef) (repair func())
	// Features says what the transport offers beyond the contract every
	// transport keeps. The suite runs the tests of a feature only when it
	// is claimed, and fails when a transport implements a feature's
	// interface without claiming it, so that no test is skipped unnoticed.
	Features Features
}

// Features are what a transport may offer beyond the delivery contract,
// in the manner of the capability flags of Watermill's universal test
// suite. The zero value claims none.
type Features struct {
	// Ordered: Subscription.Ordered is implemented (events of a key one at
	// a time, in order, retried in place).
	Ordered bool
	// History: a subscription declared with StartAtBeginning receives the
	// events its topic stored before it existed.
	History bool
	// Tap: the transport implements transport.Tapper.
	Tap bool
	// Lag: the transport implements transport.Lagger.
	Lag bool
	// Journal: the transport implements transport.Journaler.
	Journal bool
}

// requireFeature skips t unless the harness claims the feature, and fails
// it when the transport implements the feature's interface (implemented
// reports it) without the claim.
func requireFeature(t *testing.T, claimed bool, name string, implemented bool) {
	t.Helper()
	switch {
	case claimed && !implemented:
		t.Fatalf("the harness claims Features.%s, but the transport does not implement it", name)
	case !claimed && implemented:
		t.Fatalf("the transport implements %s, but the harness does not claim Features.%s: claim it so the suite tests it", name, name)
	case !claimed:
		t.Skipf("the harness does not claim Features.%s", name)
	}
}

// conformanceTest is one subtest of the suite.
type conformanceTest struct {
	name string
	run  func(t *testing.T, h Harness)
}

// contractTests run in parallel with each other: each works in its own
// namespace and waits mostly on timers, not on the CPU.
var contractTests = []conformanceTest{
	{"PublishBeforeConsume", testPublishBeforeConsume},
	{"NewSubscriptionStartsAtDeclare", testNewSubscriptionStartsAtDeclare},
	{"FanOut", testFanOut},
	{"CompetingConsumers", testCompetingConsumers},
	{"AckNotRedelivered", testAckNotRedelivered},
	{"LongHandlerKeepsLease", testLongHandlerKeepsLease},
	{"RetryWithBackoff", testRetryWithBackoff},
	{"RetryAfter", testRetryAfter},
	{"RedeliveryAfterKill", testRedeliveryAfterKill},
	{"AbandonedAfterKillOnLastAttempt", testAbandonedAfterKill},
	{"DeadLetterAfterLastAttempt", testDeadLetterAfterLastAttempt},
	{"Replay", testReplay},
	{"Discard", testDiscard},
	{"PermanentError", testPermanentError},
	{"PanicIsError", testPanicIsError},
	{"MalformedGoesToDeadLetters", testMalformedGoesToDeadLetters},
	{"OversizedGoesToDeadLetters", testOversizedGoesToDeadLetters},
	{"MisroutedGoesToDeadLetters", testMisroutedGoesToDeadLetters},
	{"ForeignExtensions", testForeignExtensions},
	{"AttributeValuesRoundTrip", testAttributeValuesRoundTrip},
	{"PublishTooLarge", testPublishTooLarge},
	{"PublishConfirms", testPublishConfirms},
	{"StopDrains", testStopDrains},
	{"Isolation", testIsolation},
	{"ClosedTransport", testClosedTransport},
	{"StopReleasesPrefetched", testStopReleasesPrefetched},
	{"DeadLetterStoreRefuses", testDeadLetterStoreRefuses},
	{"RetriesAndDeadLetters", testRetriesAndDeadLetters},
	{"Tap", testTap},
	{"Ordered", testOrdered},
	{"History", testHistory},
	{"Lag", testLag},
	{"Journal", testJournal},
}

// Run runs every conformance test as a subtest of t. Each subtest uses its own
// namespace. The contract tests run in parallel under the subtest "Contract";
// the load test "ConcurrentPublish10k" runs after them, alone, so that it
// neither starves nor is starved by the timing-sensitive tests. Run returns
// when every subtest has finished.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil || h.PublishRaw == nil || h.Kill == nil {
		t.Fatal("transporttest: Harness needs Open, PublishRaw and Kill")
	}
	// A group subtest waits for its parallel children before it returns.
	t.Run("Contract", func(t *testing.T) {
		for _, tc := range contractTests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, h)
			})
		}
	})
	t.Run("ConcurrentPublish10k", func(t *testing.T) { testConcurrentPublish10k(t, h) })
}
