package natsjs

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// The server spreads messages over the open pull requests as it likes, so
// the puller must count totals and take back exactly what each ending
// request says it will not send; a request whose messages were all counted
// against another must still be found when its status comes.
func TestPullerCountsWhatTheServerStillOwes(t *testing.T) {
	c := &consumer{held: make(map[*nats.Msg]*puller), work: make(chan *nats.Msg, 64)}
	c.stopping.Store(true) // ask() does nothing: this test plays the server
	p := &puller{c: c, limit: 16}
	open := func(reply string, n int) {
		if p.open == nil {
			p.open = make(map[string]int)
		}
		p.open[reply] = n
		p.asked += n
	}
	deliver := func(n int) {
		for range n {
			p.receive(&nats.Msg{Subject: "troupe.x.e.t.v1", Data: []byte("{}")})
		}
	}
	end := func(reply, pending string) {
		p.receive(&nats.Msg{Subject: reply, Header: nats.Header{"Status": {"408"}, "Nats-Pending-Messages": {pending}}})
	}
	check := func(step string, asked, open int) {
		t.Helper()
		if p.asked != asked || len(p.open) != open {
			t.Fatalf("%s: asked %d with %d requests open, want %d and %d", step, p.asked, len(p.open), asked, open)
		}
	}

	open("in.1", 16)
	deliver(8)
	check("8 of in.1's 16 delivered", 8, 1)
	open("in.2", 8)
	deliver(8) // in reality 4 for in.1 and 4 for in.2
	check("8 more delivered", 8, 2)
	open("in.3", 8)
	end("in.1", "4")
	check("in.1 ended owing 4", 12, 2)
	end("in.2", "4")
	check("in.2 ended owing 4", 8, 1)
	end("in.2", "4") // a second status for an ended request changes nothing
	check("in.2's status again", 8, 1)
	deliver(3)
	end("in.3", "5")
	check("in.3 ended owing 5", 0, 0)
	if p.held != 19 {
		t.Fatalf("held %d, want 19", p.held)
	}
}
