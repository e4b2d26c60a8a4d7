package shop_test

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
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/shop"
)

// Run the shop in-process, place an order over HTTP, and follow it until
// every service has done its part.
func Example() {
	dir, err := os.MkdirTemp("", "shop-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	app := shop.NewApp(troupe.Config{
		DataDir:  dir,
		HTTPAddr: "127.0.0.1:0", // any free port; app.HTTPAddr() says which
		Logger:   slog.New(slog.DiscardHandler),
	}, nil) // nil: the default options, 500 books on the shelf

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)
	base := "http://" + app.HTTPAddr()

	resp, err := http.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer":"ada","items":[{"sku":"book","qty":2}]}`))
	if err != nil {
		panic(err)
	}
	var placed struct{ ID, Status string }
	if err := json.NewDecoder(resp.Body).Decode(&placed); err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, placed.Status)

	// The order moves on by events; its read model shows how far it got.
	var o orders.Order
	for !o.Terminal || len(o.Events) < 5 {
		if ctx.Err() != nil {
			panic("the order was not fulfilled in time")
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
	fmt.Println(o.Status, o.Total)
	for i, ev := range o.Events {
		causedByPrevious := i > 0 && ev.CausationID == o.Events[i-1].ID
		fmt.Printf("%-21s from %-18s caused by the previous: %t\n", ev.Type, ev.Source, causedByPrevious)
	}
	// Output:
	// 201 Created placed
	// notified 24.00 EUR
	// order_placed.v1       from /shop/orders       caused by the previous: false
	// payment_succeeded.v1  from /shop/payment      caused by the previous: true
	// inventory_reserved.v1 from /shop/inventory    caused by the previous: true
	// shipping_arranged.v1  from /shop/shipping     caused by the previous: true
	// customer_notified.v1  from /shop/notification caused by the previous: true
}
