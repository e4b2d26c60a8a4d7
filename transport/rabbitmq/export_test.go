package rabbitmq

import "slices"

// DeclaredQueues returns every queue tr declared, sorted, so that tests on a
// shared broker can delete what they made.
func DeclaredQueues(tr *Transport) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]string, 0, len(tr.queues))
	for q := range tr.queues {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}

// ExchangeName returns the namespace's exchange.
func ExchangeName(tr *Transport) string { return tr.n.exchange() }

// DropConnections cuts both of tr's sockets without closing the transport,
// as a network failure would; tr reconnects.
func DropConnections(tr *Transport) {
	tr.pub.drop()
	tr.con.drop()
}
