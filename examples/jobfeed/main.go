// Command jobfeed runs the job feed example: a job portal where candidates
// sign up with a resume and get matching jobs, instantly or in a daily,
// weekly or monthly digest, from four services that cooperate by events.
// See README.md.
//
//	go run ./examples/jobfeed                         every service, embedded broker, http://localhost:8080
//	go run ./examples/jobfeed --services notification --http localhost:8081 --broker amqp://guest:guest@127.0.0.1:5672/
//	go run ./examples/jobfeed graph                   the services and events as a Mermaid flowchart
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes
//
//	--portal-url URL        where the profile service reads registrations, when the portal runs in another process
//	                        (default $JOBFEED_PORTAL_URL, else this process's own HTTP server)
//	--daily-digest SPEC     when the daily digest goes out (default "daily at 08:00", UTC; see outbox.ParseSpec)
//	--weekly-digest SPEC    likewise the weekly one (default "weekly on monday at 08:00")
//	--monthly-digest SPEC   likewise the monthly one (default "monthly on 1 at 08:00")
//
// A digest spec such as "every 1m" shows the digests without waiting a day.
//
// The environment variable JOBFEED_APP_NAME renames the app (default
// "jobfeed"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/contract" // adds the contract command
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/outbox"
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

func main() {
	args, opts, cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobfeed: %v\n", err)
		os.Exit(2)
	}
	cfg.Name = os.Getenv("JOBFEED_APP_NAME")
	if opts.PortalURL == "" {
		opts.PortalURL = os.Getenv("JOBFEED_PORTAL_URL")
	}
	app, err := jobfeed.NewApp(cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--h" || a == "-help" || a == "--help" }) {
		fmt.Fprint(os.Stderr, ownUsage)
	}
	os.Args = append(os.Args[:1], args...)
	app.Main()
}

const ownUsage = `Flags of the job feed, besides troupe's (below):
  --portal-url URL        where the profile service reads registrations when the portal runs elsewhere ($JOBFEED_PORTAL_URL)
  --daily-digest SPEC     when daily digests go out (default "daily at 08:00", UTC)
  --weekly-digest SPEC    when weekly digests go out (default "weekly on monday at 08:00")
  --monthly-digest SPEC   when monthly digests go out (default "monthly on 1 at 08:00")

`

// parseArgs takes this program's flags (--portal-url, --daily-digest,
// --weekly-digest, --monthly-digest) out of args and returns the rest for
// troupe.
// It also reads --data, --services and --http, leaving them in place:
// jobfeed.NewApp needs them before App.Main parses them, to open the
// databases of the services this process runs in the right directory.
// A flag may be written -name or --name, with its value after '=' or as
// the next argument. The first argument that is not a flag (a command such
// as graph) ends the flags.
func parseArgs(args []string) (rest []string, opts jobfeed.Options, cfg troupe.Config, err error) {
	own := map[string]*string{
		"portal-url":     &opts.PortalURL,
		"daily-digest":   &opts.Daily,
		"weekly-digest":  &opts.Weekly,
		"monthly-digest": &opts.Monthly,
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			// A command (graph) reads the declaration and runs nothing.
			opts.DeclareOnly = a != "--"
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			opts.DeclareOnly = true
		}
		if !hasValue && i+1 < len(args) && name != "h" && name != "help" {
			value = args[i+1]
		}
		if dst, ok := own[name]; ok {
			if !hasValue && i+1 >= len(args) {
				return nil, opts, cfg, fmt.Errorf("--%s needs a value", name)
			}
			*dst = value
			if !hasValue {
				i++
			}
			continue
		}
		switch name {
		case "data":
			cfg.DataDir = value
		case "http":
			cfg.HTTPAddr = value
		case "services":
			for s := range strings.SplitSeq(value, ",") {
				if s = strings.TrimSpace(s); s != "" {
					cfg.Services = append(cfg.Services, s)
				}
			}
		}
		rest = append(rest, a)
		if name != "h" && name != "help" && !hasValue && i+1 < len(args) {
			// troupe's flags all take a value.
			i++
			rest = append(rest, args[i])
		}
	}
	if u := opts.PortalURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, opts, cfg, fmt.Errorf("--portal-url %q: give an http:// or https:// URL, such as http://localhost:8080", u)
	}
	for _, name := range []string{"daily-digest", "weekly-digest", "monthly-digest"} {
		if spec := *own[name]; spec != "" {
			if _, err := outbox.ParseSpec(spec); err != nil {
				return nil, opts, cfg, fmt.Errorf("--%s: %v", name, err)
			}
		}
	}
	return rest, opts, cfg, nil
}
