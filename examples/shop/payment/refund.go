package payment

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/outbox"
)

// RefundCause is implemented by the data of every event after which an
// order cannot go on, so that whatever it was charged must be given back.
type RefundCause interface {
	OrderRef() string
	CustomerRef() string
	FailureReason() string
}

// Refund tells the payment service to refund the orders of one topic's
// events. Make one with [RefundOn] and pass it to [Register].
type Refund struct {
	subscribe func(svc *troupe.Service, p *processor)
}

// RefundOn returns the [Refund] that gives back what an order was charged
// whenever an event of t arrives: the inventory's failure to reserve a
// paid order, say. The topics are passed in because the services that
// publish them import this package; importing theirs would be a cycle.
func RefundOn[T RefundCause](t *troupe.Topic[T]) Refund {
	return Refund{subscribe: func(svc *troupe.Service, p *processor) {
		outbox.Subscribe(svc, t, "refund-"+t.Name(), p.ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[T]) error {
			return p.refund(ctx, tx, ev.Data, ev.Type)
		}, troupe.Emits(Refunded))
	}}
}

// refund gives back what the provider charged for the order of c, once:
// the refund's key is "<order>/refund", so a second request of any cause,
// retry or crash moves no money. It asks the provider what it charged
// rather than its own records, because a charge whose answer was lost
// (FailRate) is in the provider's books and nowhere else. Nothing charged,
// nothing refunded; Refunded is published either way, so the customer
// hears how the order ended.
func (p *processor) refund(ctx context.Context, tx *sql.Tx, c RefundCause, cause string) error {
	id := c.OrderRef()
	if cause == Failed.Type() {
		// troupe compensates an event whose last attempt died with its
		// process without running the handler again; if that attempt had
		// committed, the order is paid and on its way.
		var n int
		if err := tx.QueryRowContext(ctx, store.Q(p.ob, `SELECT count(*) FROM payment_charges WHERE order_id = ?`), id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			p.log.Warn(fmt.Sprintf("payment: %s for order %s, whose charge went through: nothing to refund", cause, id))
			return nil
		}
	}
	ms, err := p.gw.Movements(ctx, id)
	if err != nil {
		return err
	}
	var charged int64
	for _, m := range ms {
		if m.Kind == gateway.KindCharge {
			charged += m.AmountCents
		}
	}
	ev := RefundedV1{OrderID: id, Customer: c.CustomerRef(), Amount: orders.Money{Cents: charged, Currency: orders.Currency}, Reason: c.FailureReason()}
	if charged > 0 {
		m, first, err := p.gw.Refund(ctx, id+"/refund", id, c.CustomerRef(), charged)
		if err != nil {
			return fmt.Errorf("refund order %s: %w", id, err)
		}
		if first {
			p.log.Info(fmt.Sprintf("payment: refunded %s to %s for order %s (%s)", ev.Amount, ev.Customer, id, ev.Reason))
		}
		ev.RefundID = m.ID
	}
	_, err = tx.ExecContext(ctx, store.Q(p.ob, `INSERT INTO payment_refunds (order_id, refund_id, amount_cents, reason, refunded_us)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), id, ev.RefundID, charged, ev.Reason, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	return outbox.PublishTx(ctx, tx, Refunded, ev)
}
