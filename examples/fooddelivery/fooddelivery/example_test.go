package fooddelivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
)

// Run the system in-process, place an order over HTTP, and follow it until
// a courier is assigned.
func Example() {
	dir, err := os.MkdirTemp("", "fooddelivery-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	app := fooddelivery.NewApp(troupe.Config{
		DataDir:  dir,
		HTTPAddr: "127.0.0.1:0", // any free port; app.HTTPAddr() says which
		Logger:   slog.New(slog.DiscardHandler),
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)
	base := "http://" + app.HTTPAddr()

	resp, err := http.Post(base+"/orders", "application/json", strings.NewReader(
		`{"customer":"ada","restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950}]}`))
	if err != nil {
		panic(err)
	}
	var placed order.Accepted
	if err := json.NewDecoder(resp.Body).Decode(&placed); err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, placed.Status)

	// The order moves on by events; the order service's read model shows
	// how far it got.
	var o order.Order
	for !o.Terminal || len(o.Timeline) < 4 {
		if ctx.Err() != nil {
			panic("the order did not reach a terminal state in time")
		}
		time.Sleep(10 * time.Millisecond)
		resp, err := http.Get(base + "/orders/" + placed.ID)
		if err != nil {
			panic(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&o)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
	}
	fmt.Println(o.Status, order.FormatCents(o.TotalCents))
	for i, ev := range o.Timeline {
		causedByPrevious := i > 0 && ev.CausationID == o.Timeline[i-1].ID
		fmt.Printf("%-30s by %-16s caused by the previous: %t\n", ev.Type, ev.Service, causedByPrevious)
	}
	// Output:
	// 202 Accepted placed
	// assigned 19.00 EUR
	// order_placed.v1                by order            caused by the previous: false
	// payment_success.v1             by payment          caused by the previous: true
	// restaurant_confirmed_order.v1  by restaurant       caused by the previous: true
	// delivery_partner_assigned.v1   by delivery-partner caused by the previous: true
}
