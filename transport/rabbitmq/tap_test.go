package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// TestTapEndsWithItsContext: a tap whose context ends while it is being
// closed stops promptly. amqp091's ConsumeWithContext raced the channel's
// Close here and could wait forever (about one stop in six).
func TestTapEndsWithItsContext(t *testing.T) {
	tr := open(t, rabbitmq.Config{})
	for i := range 30 {
		ctx, cancel := context.WithCancel(t.Context())
		tp, err := tr.Tap(ctx, []string{"orders"}, func(*transport.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() { _ = tp.Close(); close(closed) }()
		cancel()
		select {
		case <-tp.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("tap %d did not end after its context and Close", i)
		}
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("Close of tap %d did not return", i)
		}
	}
}
