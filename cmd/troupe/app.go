package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// firstService is the service a new app starts with.
const firstService = "greeter"

// goVersion is the go line of a new app's go.mod: troupe's own minimum.
const goVersion = "1.26.8"

// newApp generates an app directory: go.mod, main.go, README.md and the
// greeter service with its test.
func newApp(dir string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("new app", flag.ContinueOnError)
	module := fs.String("module", "", "module path (default NAME)")
	noTidy := fs.Bool("no-tidy", false, "do not run go mod tidy")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("new app takes one name: troupe new app demo [--module example.com/demo]")
	}
	name := pos[0]
	if err := checkName("app", name); err != nil {
		return err
	}
	if *module == "" {
		*module = name
	}
	if strings.ContainsAny(*module, " \t\"'`\\") || strings.HasPrefix(*module, "/") || strings.HasSuffix(*module, "/") {
		return usagef("module path %q: use a path like example.com/%s", *module, name)
	}
	root := filepath.Join(dir, name)
	if _, err := os.Stat(root); err == nil {
		return fmt.Errorf("directory %s is already there; nothing was changed (pick another name or remove it)", name)
	}

	replace := os.Getenv("TROUPE_REPLACE")
	if replace != "" {
		if replace, err = filepath.Abs(replace); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(replace, "go.mod")); err != nil {
			return fmt.Errorf("TROUPE_REPLACE=%s holds no go.mod: point it at a checkout of troupe", replace)
		}
	}
	data := map[string]string{
		"App": name, "Module": *module, "Service": firstService,
		"GoVersion": goVersion, "Version": troupeVersion(replace != ""), "Replace": replace,
	}
	c := &change{root: root}
	for _, f := range []struct{ tmpl, path string }{
		{"go.mod.tmpl", "go.mod"},
		{"main.go.tmpl", "main.go"},
		{"README.md.tmpl", "README.md"},
		{"service_app.go.tmpl", filepath.Join(firstService, firstService+".go")},
		{"service_app_test.go.tmpl", filepath.Join(firstService, firstService+"_test.go")},
	} {
		b, err := render(f.tmpl, data)
		if err != nil {
			return err
		}
		c.add(f.path, b)
	}
	if replace != "" {
		// The checkout's go.sum has the sums of troupe's dependencies, so
		// the app builds from the module cache without asking sum.golang.org.
		if sum, err := os.ReadFile(filepath.Join(replace, "go.sum")); err == nil {
			c.add("go.sum", sum)
		}
	}
	if err := c.apply(out); err != nil {
		return err
	}
	if !*noTidy {
		cmd := exec.Command("go", "mod", "tidy")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(out, "go mod tidy failed (%v); run it in %s before go run .\n%s", err, name, msg)
		} else {
			fmt.Fprintln(out, "ran go mod tidy")
		}
	}
	fmt.Fprintf(out, "next: cd %s && go run .   (and go test ./...)\n", name)
	return nil
}

// troupeVersion is the troupe version a new app requires: the one this
// binary was built from when go install recorded it, v0.0.0 under a replace
// directive, and none otherwise (go mod tidy then picks the latest).
func troupeVersion(replaced bool) string {
	if replaced {
		return "v0.0.0"
	}
	if bi, ok := debug.ReadBuildInfo(); ok && strings.HasPrefix(bi.Main.Version, "v") {
		return bi.Main.Version
	}
	return ""
}
