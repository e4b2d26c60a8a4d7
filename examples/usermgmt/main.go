// Command usermgmt runs the user-management example, seed 000's system on
// troupe: a user API that commits each user and its event together, a
// mailer that sends one welcome mail per new user over SMTP, a coupon
// service that joined later without a change to the user service, and an
// embedded SMTP sink that shows the mails at GET /mail. See README.md.
//
//	go run ./examples/usermgmt                         every service, embedded broker, http://localhost:8080
//	go run ./examples/usermgmt --db postgres://postgres@127.0.0.1:5432/test
//	go run ./examples/usermgmt --services mailer --http off --broker amqp://guest:guest@127.0.0.1:5672/ --users-url http://127.0.0.1:8080
//	go run ./examples/usermgmt graph --format mermaid  the choreography
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes:
//
//	--db URL          "" (default, $USERMGMT_DB): SQLite files in the data directory; or a postgres:// URL
//	--smtp ADDR       the SMTP server the mailer sends to (default: the embedded sink's address)
//	--mail-sink ADDR  where the embedded sink listens (default 127.0.0.1:2525)
//	--users-url URL   the user service's API, for a mailer running without it
//	--coupons=false   leave out the coupon service: the app before the extension
//
// The environment variable USERMGMT_APP_NAME renames the app (default
// "usermgmt"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/contract" // adds the contract command
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/journal"
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

// exampleFlags are this program's flags on top of troupe's, and the two
// of troupe's it must know before the app is declared.
type exampleFlags struct {
	db, smtp, sinkAddr, usersURL string
	coupons                      bool

	// Peeked from troupe's flags: the example opens the database only of
	// the services that run in this process, in the data directory, and
	// troupe tells neither before it starts.
	services []string
	data     string
	command  bool // the arguments name a command (graph), not a run
}

func (f *exampleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", os.Getenv("USERMGMT_DB"), "database `URL`: empty for SQLite files in the data directory, or postgres://user@host:5432/db (default $USERMGMT_DB)")
	fs.StringVar(&f.smtp, "smtp", "", "`host:port` of the SMTP server the mailer sends to (default: the embedded mail sink)")
	fs.StringVar(&f.sinkAddr, "mail-sink", mailsink.DefaultAddr, "`host:port` where the embedded mail sink listens, in the process that runs the mailsink service")
	fs.StringVar(&f.usersURL, "users-url", "", "base `URL` of the user service's API, for a mailer that runs without it (default: this process's HTTP server)")
	fs.BoolVar(&f.coupons, "coupons", true, "run with the coupon service; --coupons=false shows the app before the extension")
}

func main() {
	var f exampleFlags
	rest, err := parseFlags(os.Args[1:], &f, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		rest = []string{"-h"} // troupe's usage follows this program's
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "usermgmt: %v\n", err)
		os.Exit(2)
	}
	opts := usermgmt.Options{
		Database:       f.db,
		SMTPAddr:       f.smtp,
		UsersURL:       f.usersURL,
		Sink:           mailsink.New(f.sinkAddr),
		WithoutCoupons: !f.coupons,
		DeclareOnly:    f.command || len(rest) > 0 && rest[0] == "-h",
	}
	app, err := usermgmt.NewApp(troupe.Config{Name: os.Getenv("USERMGMT_APP_NAME"), Services: f.services, DataDir: f.data}, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "usermgmt: %v\n", err)
		os.Exit(1)
	}
	// The dashboard at /ui/, with the mail sink as a tab, and the journal
	// behind its timelines.
	journal.Install(app)
	if _, err := dashboard.Install(app, dashboard.WithPanels(dashboard.Panel{
		Title: "Mail sink", Path: "mail", Handler: opts.Sink.Page(),
	})); err != nil {
		fmt.Fprintf(os.Stderr, "usermgmt: %v\n", err)
		os.Exit(1)
	}
	app.OnReady(func(context.Context) error {
		announce(app, os.Stderr)
		return nil
	})
	os.Args = append(os.Args[:1], rest...)
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
  curl -si -XPOST %[1]s/users -H 'Prefer: wait=10' -d '{"name":"Ada Lovelace","email":"ada@example.com"}'
  curl -s %[1]s/users/<id>
  curl -s %[1]s/mail                 the mails the sink received (where the mailsink service runs)
  curl -s %[1]s/coupons/<id>
  curl -si -XDELETE %[1]s/users/<id>

`, base)
}

// parseFlags takes this program's flags out of args and returns the rest
// for troupe, noting the values of --services and --data on the way. A
// flag may be written -name or --name, its value after '=' or as the next
// argument. The first argument that is not a flag (a command such as
// graph) ends the flags.
func parseFlags(args []string, f *exampleFlags, stderr io.Writer) ([]string, error) {
	fs := flag.NewFlagSet("usermgmt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	var mine, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			f.command = a != "--"
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			fmt.Fprintln(stderr, "Flags of the user-management example, besides troupe's (below):")
			fs.PrintDefaults()
			fmt.Fprintln(stderr)
			return nil, flag.ErrHelp
		}
		own := fs.Lookup(name)
		if own == nil {
			// troupe's flags all take a value.
			rest = append(rest, a)
			if !hasValue && i+1 < len(args) {
				i++
				value = args[i]
				rest = append(rest, value)
			}
			switch name {
			case "services":
				f.services = nil
				for s := range strings.SplitSeq(value, ",") {
					if s = strings.TrimSpace(s); s != "" {
						f.services = append(f.services, s)
					}
				}
			case "data":
				f.data = value
			}
			continue
		}
		mine = append(mine, a)
		if _, isBool := own.Value.(interface{ IsBoolFlag() bool }); !hasValue && !isBool && i+1 < len(args) {
			i++
			mine = append(mine, args[i])
		}
	}
	if err := fs.Parse(mine); err != nil {
		return nil, err
	}
	return rest, nil
}
