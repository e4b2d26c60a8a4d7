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
//	--portal-url URL   where the profile service reads registrations, when the portal runs in another process
//	                   (default $JOBFEED_PORTAL_URL, else this process's own HTTP server)
//
// The environment variable JOBFEED_APP_NAME renames the app (default
// "jobfeed"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

func main() {
	args, portalURL, cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobfeed: %v\n", err)
		os.Exit(2)
	}
	cfg.Name = os.Getenv("JOBFEED_APP_NAME")
	if portalURL == "" {
		portalURL = os.Getenv("JOBFEED_PORTAL_URL")
	}
	app, err := jobfeed.NewApp(cfg, jobfeed.Options{PortalURL: portalURL})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Args = append(os.Args[:1], args...)
	app.Main()
}

// parseArgs takes --portal-url out of args and returns the rest for troupe.
// It also reads --data, --services and --http, leaving them in place:
// jobfeed.NewApp needs them before App.Main parses them, to open the
// databases of the services this process runs in the right directory.
// A flag may be written -name or --name, with its value after '=' or as
// the next argument. The first argument that is not a flag (a command such
// as graph) ends the flags.
func parseArgs(args []string) (rest []string, portalURL string, cfg troupe.Config, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && i+1 < len(args) && name != "h" && name != "help" {
			value = args[i+1]
		}
		take := func() {
			if !hasValue {
				i++
			}
		}
		switch name {
		case "portal-url":
			if !hasValue && i+1 >= len(args) {
				return nil, "", cfg, fmt.Errorf("--portal-url needs a URL, such as http://localhost:8080")
			}
			portalURL = value
			take()
			continue
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
	if portalURL != "" && !strings.HasPrefix(portalURL, "http://") && !strings.HasPrefix(portalURL, "https://") {
		return nil, "", cfg, fmt.Errorf("--portal-url %q: give an http:// or https:// URL, such as http://localhost:8080", portalURL)
	}
	return rest, portalURL, cfg, nil
}
