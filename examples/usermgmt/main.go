// Command usermgmt runs the user-management example, seed 000's system on
// troupe: a user API that commits each user and its event together, a
// mailer that sends one welcome mail per new user over SMTP, a coupon
// service that joined later without a change to the user service, and an
// embedded SMTP sink that shows the mails at GET /mail. See README.md.
//
//	go run ./examples/usermgmt                         every service, embedded broker, http://localhost:8080
//	go run ./examples/usermgmt --db postgres://postgres@127.0.0.1:5432/test
//	go run ./examples/usermgmt --services mailer --http off --broker amqp://guest:guest@127.0.0.1:5672/ --users-url http://127.0.0.1:8080
//	go run ./examples/usermgmt -h                      the flags (troupe's and the example's) and the commands
//	go run ./examples/usermgmt graph --format mermaid  the choreography (also dlq, tail, trace)
//	USERMGMT_COUPONS=off go run ./examples/usermgmt graph   the app before the coupon extension
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes, all listed by -h:
//
//	--db URL          "" (default, $USERMGMT_DB): SQLite files in the data directory; or a postgres:// URL
//	--smtp ADDR       the SMTP server the mailer sends to (default: the embedded sink's address)
//	--mail-sink ADDR  where the embedded sink listens (default 127.0.0.1:2525)
//	--users-url URL   the user service's API, for a mailer running without it
//
// A bad value of a flag exits with status 2 and says what to give.
//
// The environment variable USERMGMT_APP_NAME renames the app (default
// "usermgmt"): its namespace on the broker, which every process of one
// system must share. USERMGMT_COUPONS=off leaves the coupon service out.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/examples/internal/operator"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
)

func main() {
	opts := &usermgmt.Options{WithoutCoupons: os.Getenv("USERMGMT_COUPONS") == "off"}
	app, err := usermgmt.NewApp(troupe.Config{Name: os.Getenv("USERMGMT_APP_NAME")}, opts)
	if err == nil {
		// The dashboard at /ui/, with the mail sink as a tab.
		err = operator.Install(app, dashboard.Panel{Title: "Mail sink", Path: "mail", Handler: opts.Sink.Page()})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "usermgmt: %v\n", err)
		os.Exit(1)
	}
	app.OnReady(func(context.Context) error {
		announce(app, os.Stderr)
		return nil
	})
	app.Main()
}

// announce prints the requests to try, in a process that serves the user
// API.
func announce(app *troupe.App, w io.Writer) {
	if app.HTTPAddr() == "" || !app.Runs(users.ServiceName) {
		return
	}
	base := "http://" + app.HTTPAddr()
	fmt.Fprintf(w, `
user management is running at %[1]s — try:
  curl -si -XPOST %[1]s/users -H 'Prefer: wait=10' -H 'Idempotency-Key: ada-1' -d '{"name":"Ada Lovelace","email":"ada@example.com"}'
  curl -s %[1]s/users/<id>
  curl -s %[1]s/users                every registration, counted by status
  curl -s %[1]s/mail                 the mails the sink received (where the mailsink service runs)
  curl -s %[1]s/coupons/<id>
  curl -si -XDELETE %[1]s/users/<id>
  %[1]s/ui/                         the dashboard

`, base)
}
