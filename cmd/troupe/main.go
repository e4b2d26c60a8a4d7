// Command troupe generates troupe apps, services, topics and subscribers as
// plain Go, in the layout the troupe docs recommend: one package per service,
// each topic in the package of the service that publishes it, and a main.go
// that registers the services.
//
//	troupe new app NAME [--module PATH] [--no-tidy]
//	troupe new service NAME
//	troupe new topic NAME --version N [--service SVC]
//	troupe new subscriber TOPIC SERVICE NAME
//
// Run the last three inside an app directory (the one holding go.mod and
// main.go). No generator overwrites anything: when a file or declaration it
// would write exists, it says so in one line and changes nothing.
//
// Exit status: 0 done, 1 refused or failed, 2 a usage mistake.
//
// The environment variable TROUPE_REPLACE=/path/to/troupe makes new app add
// a replace directive to that checkout of troupe, for working on troupe
// itself.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "troupe:", err)
		os.Exit(1)
	}
	os.Exit(run(dir, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  troupe new app NAME [--module PATH] [--no-tidy]
  troupe new service NAME
  troupe new topic NAME --version N [--service SVC]
  troupe new subscriber TOPIC SERVICE NAME`

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run runs the command line args in directory dir and returns the exit
// status.
func run(dir string, args []string, stdout, stderr io.Writer) int {
	err := dispatch(dir, args, stdout)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "troupe:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(dir string, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(out, usage)
		if len(args) == 0 {
			return usagef("say what to generate, for example: troupe new app demo")
		}
		return nil
	}
	if args[0] != "new" {
		return usagef("unknown command %q: the only command is new; run troupe help", args[0])
	}
	if len(args) < 2 {
		return usagef("new what? use troupe new app|service|topic|subscriber ...")
	}
	rest := args[2:]
	switch args[1] {
	case "app":
		return newApp(dir, rest, out)
	case "service":
		return newService(dir, rest, out)
	case "topic":
		return newTopic(dir, rest, out)
	case "subscriber":
		return newSubscriber(dir, rest, out)
	default:
		return usagef("unknown generator %q: use troupe new app|service|topic|subscriber", args[1])
	}
}
