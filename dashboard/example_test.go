package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/journal"
)

type Greeting struct {
	Name string `json:"name"`
}

var Greeted = troupe.NewTopic[Greeting]("greeted", 1)

// Install the dashboard (and the journal, for timelines) before the app
// starts; it serves /ui/ on the app's HTTP server. Replay and discard want
// the admin token.
func Example() {
	dir, err := os.MkdirTemp("", "dashboard-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{
		Name:     "hello",
		DataDir:  dir,
		HTTPAddr: "127.0.0.1:0", // the dashboard serves on loopback addresses only
		Logger:   slog.New(slog.DiscardHandler),
	})
	greeter := app.Service("greeter").Publishes(Greeted)
	troupe.Subscribe(app.Service("audit"), Greeted, "log",
		func(context.Context, troupe.Event[Greeting]) error { return nil })
	_ = greeter

	journal.Install(app)
	dash, err := dashboard.Install(app, dashboard.Token("let-me-in"))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	// The page is at dash.URL(); its API is under it.
	res, err := http.Get(dash.URL() + "api/topology")
	if err != nil {
		panic(err)
	}
	var graph struct {
		Services []struct{ Name string }
	}
	_ = json.NewDecoder(res.Body).Decode(&graph)
	res.Body.Close()
	fmt.Println(res.StatusCode, graph.Services)

	// An admin action without the token is refused.
	res, err = http.Post(dash.URL()+"api/deadletters/audit.log/1/replay", "", nil)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode)

	// With it, the dead letter is looked for (there is none).
	req, _ := http.NewRequest(http.MethodPost, dash.URL()+"api/deadletters/audit.log/1/replay", nil)
	req.Header.Set("Authorization", "Bearer "+dash.Token())
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode)
	// Output:
	// 200 [{audit} {greeter}]
	// 401
	// 404
}

// A panel adds an app's own page to the dashboard, as a tab.
func ExampleWithPanels() {
	app := troupe.New(troupe.Config{Name: "mail"})
	sink := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "the mails the app sent") // served at /ui/panels/outbox/
	})
	_, err := dashboard.Install(app, dashboard.WithPanels(dashboard.Panel{Title: "Sent mail", Path: "outbox", Handler: sink}))
	fmt.Println(err)

	_, err = dashboard.Install(troupe.New(troupe.Config{Name: "mail"}),
		dashboard.WithPanels(dashboard.Panel{Title: "Sent mail", Path: "Sent Mail", Handler: sink}))
	fmt.Println(err)
	// Output:
	// <nil>
	// dashboard: panel "Sent mail": path "Sent Mail": use lower-case letters, digits and '-'
}
