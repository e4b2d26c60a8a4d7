package rabbitmq

// DeclaredQueues returns every queue tr declared, sorted, so that tests on a
// shared broker can delete what they made.
func DeclaredQueues(tr *Transport) []string { return tr.Queues() }

// ExchangeName returns the namespace's exchange.
func ExchangeName(tr *Transport) string { return tr.n.exchange() }

// DropConnections cuts both of tr's sockets without closing the transport,
// as a network failure would; tr reconnects.
func DropConnections(tr *Transport) {
	tr.pub.drop()
	tr.con.drop()
}
