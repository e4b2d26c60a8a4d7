package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// reserved are names a service package cannot take, because main.go or the
// generated code already uses them.
var reserved = map[string]bool{"main": true, "app": true, "troupe": true, "svc": true, "testing": true}

// checkName checks that name can be both a troupe name (app, service, topic,
// subscription) and a Go identifier: a lowercase letter followed by lowercase
// letters, digits and '_'.
func checkName(kind, name string) error {
	ok := name != "" && name[0] >= 'a' && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	switch {
	case !ok:
		return usagef("%s name %q: use a lowercase letter followed by lowercase letters, digits or '_', like %s", kind, name, exampleName[kind])
	case token.IsKeyword(name) || token.IsKeyword(camel(name, false)):
		return usagef("%s name %q is a Go keyword: pick another, like %s_%s", kind, name, name, kind)
	case len(name) > 100:
		return usagef("%s name %q is too long: keep it under 100 characters", kind, name)
	}
	return nil
}

// exampleName is a good name of each kind, for error messages.
var exampleName = map[string]string{"app": "shop", "service": "billing", "topic": "order_placed", "subscription": "send_receipt"}

// camel turns a snake_case name into a Go identifier: OrderPlaced when
// exported, orderPlaced when not.
func camel(name string, exported bool) string {
	var b strings.Builder
	up := exported
	for _, r := range name {
		if r == '_' {
			up = b.Len() > 0 || exported
			continue
		}
		if up {
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// render executes the named template and formats the result with go/format
// when it is Go.
func render(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, err
	}
	if strings.HasSuffix(name, ".go.tmpl") {
		src, err := format.Source(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("template %s: %v", name, err)
		}
		return src, nil
	}
	return buf.Bytes(), nil
}

// change is a set of files to create and files to rewrite, checked in full
// before anything is written, so a refusal touches nothing.
type change struct {
	root    string
	create  []file
	rewrite []file
}

type file struct {
	path string // relative to root
	data []byte
}

func (c *change) add(path string, data []byte) { c.create = append(c.create, file{path, data}) }

func (c *change) edit(path string, data []byte) { c.rewrite = append(c.rewrite, file{path, data}) }

// check refuses when a file to create exists.
func (c *change) check() error {
	for _, f := range c.create {
		if _, err := os.Stat(filepath.Join(c.root, f.path)); err == nil {
			return fmt.Errorf("%s is already there; nothing was changed (remove it or pick another name)", f.path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// apply writes the change and lists what it did on out.
func (c *change) apply(out io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	for _, f := range c.create {
		p := filepath.Join(c.root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = w.Write(f.data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "created", f.path)
	}
	for _, f := range c.rewrite {
		p := filepath.Join(c.root, f.path)
		tmp := p + ".troupe-new"
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
		fmt.Fprintln(out, "updated", f.path)
	}
	return nil
}
