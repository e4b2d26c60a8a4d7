package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/metrics"
)

type invoice struct {
	Amount int `json:"amount"`
}

var invoiceIssued = troupe.NewTopic[invoice]("invoice_issued", 1)

// Install serves the app's metrics at GET /metrics on its HTTP server.
func ExampleInstall() {
	dir, _ := os.MkdirTemp("", "metrics-example")
	defer os.RemoveAll(dir)

	app := troupe.New(troupe.Config{Name: "billing", DataDir: dir, HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler)})
	app.Service("invoicing").Publishes(invoiceIssued)
	troupe.Subscribe(app.Service("ledger"), invoiceIssued, "book",
		func(context.Context, troupe.Event[invoice]) error { return nil })
	if err := metrics.Install(app); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer app.Stop(ctx)
	if err := troupe.Publish(app.Context(ctx), invoiceIssued, invoice{Amount: 42}); err != nil {
		log.Fatal(err)
	}

	// Scrape as Prometheus would, until the event is handled.
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		lines = grep("http://"+app.HTTPAddr()+"/metrics", "troupe_events_handled_total{", "troupe_events_published_total{")
		if len(lines) == 2 && strings.HasSuffix(lines[0], " 1") {
			break
		}
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// troupe_events_handled_total{app="billing",service="ledger",subscription="book",topic="invoice_issued.v1"} 1
	// troupe_events_published_total{app="billing",service="",topic="invoice_issued.v1"} 1
}

// grep returns the lines of the page at url that start with one of the
// prefixes.
func grep(url string, prefixes ...string) []string {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, p := range prefixes {
			if strings.HasPrefix(sc.Text(), p) {
				out = append(out, sc.Text())
			}
		}
	}
	return out
}
