package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// streamBuffer is how many events a live stream holds for a slow browser
// before it drops them (and says how many it dropped).
const streamBuffer = 256

// keepAlive is how often an idle stream sends a comment, so proxies keep
// it open and a browser that went away is noticed.
const keepAlive = 15 * time.Second

// writeTimeout bounds one write to a stream's browser.
const writeTimeout = 10 * time.Second

// stream is one open live event stream.
type stream struct {
	cancel context.CancelFunc

	mu     sync.Mutex
	conn   net.Conn // set once hijacked
	closed bool
}

func (s *stream) close() {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.conn != nil {
		_ = s.conn.Close()
	}
	s.closed = true
}

// hijacked hands s the connection it streams on; it reports false, having
// closed conn, when s was closed meanwhile.
func (s *stream) hijacked(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = conn.Close()
		return false
	}
	s.conn = conn
	return true
}

func (d *Dashboard) addStream(s *stream) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.streams[s] = struct{}{}
	return true
}

func (d *Dashboard) removeStream(s *stream) {
	d.mu.Lock()
	delete(d.streams, s)
	d.mu.Unlock()
	s.close()
}

// closeStreams ends every live stream; the app calls it when it stops.
func (d *Dashboard) closeStreams() {
	d.mu.Lock()
	d.closed = true
	streams := make([]*stream, 0, len(d.streams))
	for s := range d.streams {
		streams = append(streams, s)
	}
	d.mu.Unlock()
	for _, s := range streams {
		s.close()
	}
}

// liveEvent is one event of the live stream.
type liveEvent struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Source      string          `json:"source"`
	Service     string          `json:"service,omitempty"`
	Time        time.Time       `json:"time"`
	Correlation string          `json:"correlation"`
	Causation   string          `json:"causation,omitempty"`
	OrderingKey string          `json:"orderingKey,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataText    string          `json:"dataText,omitempty"`
}

func liveEventOf(m *transport.Message) liveEvent {
	topic, _, _ := transport.ParseType(m.Type)
	ev := liveEvent{ID: m.ID, Type: m.Type, Topic: topic, Source: m.Source, Service: serviceOf(m.Source), Time: m.Time.UTC(),
		Correlation: m.CorrelationID, Causation: m.CausationID, OrderingKey: m.Extensions["partitionkey"]}
	ev.Data, ev.DataText = dataOf(m.Data)
	return ev
}

// apiEvents streams the events published to the app's topics as
// server-sent events, from a transport tap: one "ready" event once the tap
// listens, then each event as a message whose data is the event as JSON.
// ?topic= (repeated or comma-separated topic names) and ?correlation= keep
// only some. A "dropped" event counts events a slow reader lost; an "end"
// event says the tap stopped (the browser reconnects by itself).
//
// The stream takes the connection over from the HTTP server (it is
// hijacked), because the server's graceful shutdown waits for every
// request to finish and a stream never does; the dashboard closes its
// streams itself when the app stops.
func (d *Dashboard) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	known := make(map[string]bool)
	var names []string
	for _, t := range topology.FromApp(d.app).Topics {
		known[t.Name] = true
		names = append(names, t.Name)
	}
	var topics []string
	for _, v := range q["topic"] {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !known[t] {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("no topic %q in this app; it has %s", t, strings.Join(names, ", ")))
				return
			}
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	corr := q.Get("correlation")
	if q.Has("correlation") {
		if err := checkCorrelation(corr); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	tr := d.app.Transport()
	if tr == nil {
		writeError(w, http.StatusServiceUnavailable, "the app is not started")
		return
	}
	tapper, ok := tr.(transport.Tapper)
	if !ok {
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("the app's transport (%T) cannot show events as they pass", tr))
		return
	}
	if len(topics) == 0 {
		// Every topic of the app, rather than every topic of the
		// namespace: the tap stays within what the page can name.
		topics = names
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s := &stream{cancel: cancel}
	if !d.addStream(s) {
		writeError(w, http.StatusServiceUnavailable, "the app is stopping")
		return
	}
	defer d.removeStream(s)

	events := make(chan []byte, streamBuffer)
	var dropped atomic.Int64
	tap, err := tapper.Tap(ctx, topics, func(m *transport.Message) {
		if corr != "" && m.CorrelationID != corr {
			return
		}
		b, err := json.Marshal(liveEventOf(m))
		if err != nil {
			return
		}
		select {
		case events <- b:
		default:
			dropped.Add(1)
		}
	})
	if err != nil {
		writeError(w, http.StatusBadGateway, "opening a tap on the broker: "+err.Error())
		return
	}
	defer tap.Close()

	out, flush, err := openStream(w, s)
	if err != nil {
		return // the connection is gone
	}
	send := func(chunk string) bool {
		if _, err := io.WriteString(out, chunk); err != nil {
			return false
		}
		return flush() == nil
	}
	ready, _ := json.Marshal(map[string]any{"topics": topics, "correlation": corr})
	if !send("retry: 2000\n\nevent: ready\ndata: " + string(ready) + "\n\n") {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tap.Done():
			send("event: end\ndata: {}\n\n")
			return
		case <-tick.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case b := <-events:
			var chunk strings.Builder
			if n := dropped.Swap(0); n > 0 {
				fmt.Fprintf(&chunk, "event: dropped\ndata: {\"count\":%d}\n\n", n)
			}
			chunk.WriteString("data: ")
			chunk.Write(b)
			chunk.WriteString("\n\n")
			if !send(chunk.String()) {
				return
			}
		}
	}
}

// openStream starts the event-stream response. It takes the connection
// over when the server lets it (HTTP/1.x, which the app serves), and
// otherwise streams through the ResponseWriter, where Stop then waits for
// the stream until its shutdown timeout.
func openStream(w http.ResponseWriter, s *stream) (io.Writer, func() error, error) {
	rc := http.NewResponseController(w)
	// The request had no body and browsers send nothing after it, so
	// the reader Hijack returns holds nothing to keep.
	conn, _, err := rc.Hijack()
	if err != nil {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		flush := func() error {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			return rc.Flush()
		}
		return w, flush, flush()
	}
	if !s.hijacked(conn) {
		return nil, nil, net.ErrClosed
	}
	// The browser sends nothing more; a read ending means it went away.
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		s.close()
	}()
	bw := bufio.NewWriter(conn)
	flush := func() error {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		return bw.Flush()
	}
	_, _ = io.WriteString(bw, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/event-stream; charset=utf-8\r\n"+
		"Cache-Control: no-store\r\n"+
		"X-Content-Type-Options: nosniff\r\n"+
		"Connection: close\r\n\r\n")
	return bw, flush, flush()
}
