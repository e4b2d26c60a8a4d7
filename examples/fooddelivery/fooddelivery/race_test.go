//go:build race

package fooddelivery_test

// raceEnabled is true under the race detector, which makes the chaos run
// several times slower; it then places fewer orders.
const raceEnabled = true
