// Command jobfeed runs the job feed example: a job portal where candidates
// sign up with a resume and get matching jobs, instantly or in a daily,
// weekly or monthly digest, from four services that cooperate by events.
// See README.md.
//
//	go run ./examples/jobfeed                         every service, embedded broker, http://localhost:8080
//	go run ./examples/jobfeed --services notification --http localhost:8081 --broker amqp://guest:guest@127.0.0.1:5672/
//	go run ./examples/jobfeed -h                      the flags (troupe's and the job feed's) and the commands
//	go run ./examples/jobfeed graph                   the services and events as a Mermaid flowchart
//	go run ./examples/jobfeed dlq list                the dead letters of each subscription (also tail, trace)
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes, all listed by -h:
//
//	--portal-url URL        where the profile service reads registrations, when the portal runs in another process
//	                        (default $JOBFEED_PORTAL_URL, else this process's own HTTP server)
//	--daily-digest SPEC     when the daily digest goes out (default "daily at 08:00", UTC; see outbox.ParseSpec)
//	--weekly-digest SPEC    likewise the weekly one (default "weekly on monday at 08:00")
//	--monthly-digest SPEC   likewise the monthly one (default "monthly on 1 at 08:00")
//	--db URL                where the services keep their state: empty (default $JOBFEED_DB) for SQLite files
//	                        in the data directory, or postgres://user@host:5432/db
//
// A digest spec such as "every 1m" shows the digests without waiting a day.
// A bad value of a flag exits with status 2 and says what to give.
//
// The environment variable JOBFEED_APP_NAME renames the app (default
// "jobfeed"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"fmt"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/operator"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
)

func main() {
	app, err := jobfeed.NewApp(troupe.Config{Name: os.Getenv("JOBFEED_APP_NAME")}, &jobfeed.Options{})
	if err == nil {
		err = operator.Install(app)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobfeed:", err)
		os.Exit(1)
	}
	app.Main()
}
