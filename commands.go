package troupe

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
)

// CommandFunc runs a subcommand of an app binary: app is the declared (not
// started) app, args are the arguments after the subcommand's name, stdout
// receives the command's output and stderr its diagnostics. A command that
// rejects its arguments writes one line saying why to stderr and returns an
// error made with [UsageErrorf]; [App.Main] then exits with status 2. A
// command that returns flag.ErrHelp exits with status 0.
type CommandFunc func(ctx context.Context, app *App, args []string, stdout, stderr io.Writer) error

type command struct {
	summary string
	run     CommandFunc
}

var (
	commandsMu sync.RWMutex
	commands   = map[string]command{}
)

// RegisterCommand adds a subcommand to the standard command line of every
// app binary: "<app> name [args]" runs run instead of the app. Packages
// register their commands in init, so a binary gets a command by importing
// its package; the topology package registers "graph" this way:
//
//	import _ "github.com/troupe-go/troupe/topology"
//
// summary is a short description for the usage text. Registering a name
// twice, an empty name, a name starting with '-' or a nil run panics.
func RegisterCommand(name, summary string, run CommandFunc) {
	if name == "" || name[0] == '-' || run == nil {
		panic(fmt.Sprintf("troupe: RegisterCommand(%q): need a name not starting with '-' and a function", name))
	}
	commandsMu.Lock()
	defer commandsMu.Unlock()
	if _, dup := commands[name]; dup {
		panic(fmt.Sprintf("troupe: command %q registered twice", name))
	}
	commands[name] = command{summary: summary, run: run}
}

// UsageErrorf returns an error for a mistake in a command's arguments; it
// makes [App.Main] exit with status 2 without printing it again, so the
// command prints its one-line explanation to stderr itself.
func UsageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

func lookupCommand(name string) (command, bool) {
	commandsMu.RLock()
	defer commandsMu.RUnlock()
	c, ok := commands[name]
	return c, ok
}

// commandUsage lists the registered commands for the usage text, sorted;
// "" when there are none.
func commandUsage() string {
	commandsMu.RLock()
	defer commandsMu.RUnlock()
	if len(commands) == 0 {
		return ""
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	s := "\nCommands:\n"
	for _, n := range names {
		s += fmt.Sprintf("  %-10s %s\n", n, commands[n].summary)
	}
	return s
}
