package orders

import (
	"maps"
	"slices"
	"strings"
)

// Currency is the one currency the shop sells in.
const Currency = "EUR"

// catalog holds the price in cents of every product the shop sells. A real
// shop would read it from a database or a catalog service; the orders
// service prices an order when it is placed, so later price changes do not
// touch orders in flight.
var catalog = map[string]int64{
	"book": 1200,
	"lamp": 2490,
	"mug":  800,
	"pen":  150,
	"tea":  450,
}

// price returns the unit price of sku and whether the shop sells it.
func price(sku string) (Money, bool) {
	c, ok := catalog[sku]
	return Money{Cents: c, Currency: Currency}, ok
}

// Sells reports whether sku is in the catalog.
func Sells(sku string) bool {
	_, ok := catalog[sku]
	return ok
}

// SKUs returns the catalog's SKUs, sorted.
func SKUs() []string { return slices.Sorted(maps.Keys(catalog)) }

// skuList is the catalog's SKUs, sorted, for error messages.
func skuList() string { return strings.Join(SKUs(), ", ") }
