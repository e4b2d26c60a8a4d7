package troupe

import (
	"context"
	"fmt"
	"strings"

	"github.com/troupe-go/troupe/transport"
)

// DeadLetter is an event a subscription gave up on, with why and when.
type DeadLetter = transport.DeadLetter

// DeadLetters lists up to limit dead letters (limit <= 0: all) of the
// subscription named "service.name", oldest first. It fails with
// [ErrNotStarted] before Start, and for a subscription the app does not
// declare.
func (a *App) DeadLetters(ctx context.Context, subscription string, limit int) ([]DeadLetter, error) {
	tr, ref, err := a.deadLetterRef(subscription)
	if err != nil {
		return nil, err
	}
	return tr.DeadLetters(ctx, ref, limit)
}

// Replay sends one dead letter back to the subscription that failed it, and
// only to it, as a fresh delivery (its attempt count starts again at 1). It
// fails with an error wrapping transport.ErrNotFound for an unknown id.
func (a *App) Replay(ctx context.Context, subscription, id string) error {
	tr, ref, err := a.deadLetterRef(subscription)
	if err != nil {
		return err
	}
	return tr.Replay(ctx, ref, id)
}

// Discard deletes one dead letter for good.
func (a *App) Discard(ctx context.Context, subscription, id string) error {
	tr, ref, err := a.deadLetterRef(subscription)
	if err != nil {
		return err
	}
	return tr.Discard(ctx, ref, id)
}

func (a *App) deadLetterRef(subscription string) (transport.Transport, transport.SubscriptionRef, error) {
	tr := a.Transport()
	if tr == nil {
		return nil, transport.SubscriptionRef{}, ErrNotStarted
	}
	svc, name, ok := strings.Cut(subscription, ".")
	if ok {
		for _, s := range a.services {
			if s.name != svc {
				continue
			}
			for _, sub := range s.subs {
				if sub.name == name {
					return tr, sub.cfg.spec.SubscriptionRef, nil
				}
			}
		}
	}
	return nil, transport.SubscriptionRef{}, fmt.Errorf("troupe: no subscription %q: name it as service.subscription; the app has %s", subscription, strings.Join(a.subscriptionNames(), ", "))
}

func (a *App) subscriptionNames() []string {
	var out []string
	for _, s := range a.services {
		for _, sub := range s.subs {
			out = append(out, sub.String())
		}
	}
	return out
}
