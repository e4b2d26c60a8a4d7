package troupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestRegisteredCommand(t *testing.T) {
	var gotApp *App
	var gotArgs []string
	RegisterCommand("test-cmd", "a command for tests", func(_ context.Context, app *App, args []string, stdout, stderr io.Writer) error {
		gotApp, gotArgs = app, args
		if len(args) > 0 && args[0] == "bad" {
			fmt.Fprintln(stderr, "test-cmd: bad argument")
			return UsageErrorf("test-cmd: bad argument %q", args[0])
		}
		fmt.Fprintln(stderr, "ran")
		return nil
	})
	app := New(Config{Name: "cmdtest", Broker: "nats://127.0.0.1:1"}) // never dialled
	var stderr bytes.Buffer
	if err := app.RunCommand(context.Background(), []string{"test-cmd", "--x", "y"}, &stderr); err != nil {
		t.Fatal(err)
	}
	if gotApp != app || strings.Join(gotArgs, " ") != "--x y" || stderr.String() != "ran\n" {
		t.Errorf("command got app %p (want %p), args %q, stderr %q", gotApp, app, gotArgs, stderr.String())
	}
	if app.Transport() != nil {
		t.Error("the command started the app")
	}

	stderr.Reset()
	err := app.RunCommand(context.Background(), []string{"test-cmd", "bad"}, &stderr)
	if !errors.Is(err, ErrUsage) || stderr.String() != "test-cmd: bad argument\n" {
		t.Errorf("usage error: err %v, stderr %q", err, stderr.String())
	}

	stderr.Reset()
	if err := app.RunCommand(context.Background(), []string{"-h"}, &stderr); err == nil || !strings.Contains(stderr.String(), "Commands:\n") || !strings.Contains(stderr.String(), "\n  test-cmd   a command for tests\n") {
		t.Errorf("-h does not list the command: %v\n%s", err, stderr.String())
	}

	for _, name := range []string{"test-cmd", "", "-x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterCommand(%q) did not panic", name)
				}
			}()
			RegisterCommand(name, "", func(context.Context, *App, []string, io.Writer, io.Writer) error { return nil })
		}()
	}
}
