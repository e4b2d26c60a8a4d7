package contract_test

import (
	"context"
	"fmt"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/contract"
)

// The order event of release 1.
type OrderPlacedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
}

// Release 2 calls the customer by id and may carry a note.
type OrderPlacedV2 struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Note       string `json:"note,omitempty"`
}

// shop declares the shop of one release: orders publishes the topic,
// billing charges each order.
func shop[T any](topic *troupe.Topic[T]) *troupe.App {
	app := troupe.New(troupe.Config{Name: "shop"})
	app.Service("orders").Publishes(topic)
	troupe.Subscribe(app.Service("billing"), topic, "charge", func(context.Context, troupe.Event[T]) error { return nil })
	return app
}

func export(app *troupe.App, source string) *contract.Contract {
	c, err := contract.FromApp(app)
	if err != nil {
		panic(err)
	}
	c.Source = source
	return c
}

// Release 2 changes the event in place: the rename breaks billing, whose
// handler would get no customer_id from the events release 1 published;
// the optional note is compatible.
func ExampleCheck() {
	release1 := export(shop(troupe.NewTopic[OrderPlacedV1]("order_placed", 1)), "release-1.json")
	release2 := export(shop(troupe.NewTopic[OrderPlacedV2]("order_placed", 1)), "")

	report, err := contract.Check(release2, release1)
	if err != nil {
		panic(err)
	}
	_ = report.Write(os.Stdout, "text")
	// Output:
	// shop: 1 breaking change, 1 compatible against release-1.json
	// BREAKING    order_placed.v1 customer_id: field-renamed (renamed from customer)
	//             breaks billing.charge: requires customer_id, missing from the events orders published before (release-1.json)
	//             fix: publish a new version of the topic, with troupe.Upcast from this one
	// compatible  order_placed.v1 note: field-added (optional string)
	//             optional: readers of older events get the zero value, and readers that do not know it ignore it
}

// The same change as a new version with an upcaster from the old one is
// compatible: billing reads the events of v1 still around through it, and
// no other program reads v1.
func ExampleCheck_newVersion() {
	release1 := export(shop(troupe.NewTopic[OrderPlacedV1]("order_placed", 1)), "release-1.json")
	placed := troupe.NewTopic[OrderPlacedV2]("order_placed", 2)
	troupe.Upcast(placed, 1, func(old OrderPlacedV1) (OrderPlacedV2, error) {
		return OrderPlacedV2{OrderID: old.OrderID, CustomerID: old.Customer}, nil
	})
	release2 := export(shop(placed), "")

	report, err := contract.Check(release2, release1)
	if err != nil {
		panic(err)
	}
	fmt.Println("breaking:", report.Breaking)
	_ = report.Write(os.Stdout, "text")
	// Output:
	// breaking: 0
	// shop: 0 breaking changes, 3 compatible against release-1.json
	// compatible  order_placed.v1: version-removed (v2 is published instead)
	//             events already published are read through the upcaster from v1 (billing.charge); no other program reads order_placed.v1 alone
	// compatible  order_placed.v1: upcaster-added (read as contract_test.OrderPlacedV1 and converted to v2)
	//             the program reads more than before
	// compatible  order_placed.v2: version-added (published instead of v1)
	//             new: no consumer depended on it before
}

// A handler that uses two fields of the event says so; then the
// producer may stop sending the others.
func ExampleReads() {
	placed := troupe.NewTopic[OrderPlacedV2]("order_placed", 2)
	app := troupe.New(troupe.Config{Name: "shop"})
	app.Service("orders").Publishes(placed)
	contract.Reads(troupe.Subscribe(app.Service("billing"), placed, "charge",
		func(ctx context.Context, ev troupe.Event[OrderPlacedV2]) error {
			fmt.Println("charging", ev.Data.CustomerID, "for", ev.Data.OrderID)
			return nil
		}), "order_id", "customer_id")

	c, err := contract.FromApp(app)
	if err != nil {
		panic(err)
	}
	for _, s := range c.Subscriptions {
		fmt.Println(s.Ref(), "reads", s.Declared, "of", len(c.Topics[0].Schema.Properties), "fields")
	}
	// Output:
	// billing.charge reads [customer_id order_id] of 3 fields
}
