// Package tally is the reconciliation every example app's list endpoint
// reports in the same shape (GET /orders, GET /users, …), so that a test, a
// load harness or an operator checks any app the same way: how many
// business transactions there are, how many reached a terminal state, and
// how many have not (yet).
package tally

// Counts is the part of a list endpoint's body every app shares. Embed it
// in the body's struct: its fields then sit at the top level of the JSON.
type Counts struct {
	// Count is the number of transactions (orders, users, …).
	Count int `json:"count"`
	// ByStatus counts them by status.
	ByStatus map[string]int `json:"by_status"`
	// Terminal counts those in a terminal status: success, or a failure
	// that was compensated (refunded, cancelled).
	Terminal int `json:"terminal"`
	// Stuck counts the others: still on their way, or stalled. Once the
	// app is idle, every accepted transaction is terminal and Stuck is 0.
	Stuck int `json:"stuck"`
}

// Add counts n transactions in status, terminal or not.
func (c *Counts) Add(status string, n int, terminal bool) {
	if c.ByStatus == nil {
		c.ByStatus = make(map[string]int)
	}
	c.Count += n
	c.ByStatus[status] += n
	if terminal {
		c.Terminal += n
	} else {
		c.Stuck += n
	}
}

// Settled reports whether every transaction is terminal.
func (c Counts) Settled() bool { return c.Stuck == 0 && c.Terminal == c.Count }
