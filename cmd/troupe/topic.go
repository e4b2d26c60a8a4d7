package main

import (
	"flag"
	"fmt"
	"go/ast"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// newTopic generates a topic variable and its data type in the package of
// the service that publishes it, and adds it to the service's Publishes.
func newTopic(dir string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("new topic", flag.ContinueOnError)
	version := fs.Int("version", 0, "topic version, from 1")
	service := fs.String("service", "", "the service that publishes it")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("new topic takes one name: troupe new topic order_placed --version 1 --service orders")
	}
	name := pos[0]
	if err := checkName("topic", name); err != nil {
		return err
	}
	if *version < 1 {
		return usagef("topic %s needs a version from 1: add --version 1", name)
	}
	a, err := openApp(dir, "topic")
	if err != nil {
		return err
	}
	if *service == "" {
		svcs, err := a.services()
		if err != nil {
			return err
		}
		if len(svcs) != 1 {
			return usagef("which service publishes %s? add --service NAME (the app has: %s)", name, strings.Join(svcs, ", "))
		}
		*service = svcs[0]
	}
	p, err := a.service(*service)
	if err != nil {
		return err
	}
	topics, err := a.findTopics()
	if err != nil {
		return err
	}
	for _, t := range topics {
		if t.name == name {
			return fmt.Errorf("topic %q is already declared as %s in %s; nothing was changed", name, t.varName, t.dir)
		}
	}
	data := map[string]any{
		"Service": *service, "Topic": name, "Version": *version,
		"Var": camel(name, true), "Type": camel(name, true) + "V" + strconv.Itoa(*version),
	}
	for _, id := range []string{data["Var"].(string), data["Type"].(string)} {
		if p.declares(id) {
			return fmt.Errorf("package %s already declares %s; nothing was changed", *service, id)
		}
	}
	src, err := render("topic.go.tmpl", data)
	if err != nil {
		return err
	}
	c := &change{root: a.root}
	c.add(filepath.Join(*service, name+".go"), src)

	// Add the topic to the service's Publishes(...) in Register.
	file, reg := p.register()
	var call *ast.CallExpr
	if reg != nil {
		ast.Inspect(reg.Body, func(n ast.Node) bool {
			if ce, ok := n.(*ast.CallExpr); ok && call == nil {
				if sel, ok := ce.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Publishes" {
					call = ce
				}
			}
			return call == nil
		})
	}
	if call != nil {
		path := filepath.Join(a.root, *service, file)
		old, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := data["Var"].(string)
		if len(call.Args) > 0 {
			text = ", " + text
		}
		edited, err := insert(old, p.fset.Position(call.Rparen).Offset, text)
		if err != nil {
			return fmt.Errorf("editing %s: %v", file, err)
		}
		c.edit(filepath.Join(*service, file), edited)
	}
	if err := c.apply(out); err != nil {
		return err
	}
	if call == nil {
		fmt.Fprintf(out, "found no Publishes(...) in %s.Register; add %s to the service's Publishes yourself\n", *service, data["Var"])
	}
	return nil
}

// services lists the app's service packages: directories directly under the
// root whose package has a Register function.
func (a *appDir) services() ([]string, error) {
	entries, err := os.ReadDir(a.root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p, err := parseDir(filepath.Join(a.root, e.Name()))
		if err != nil {
			return nil, err
		}
		if _, reg := p.register(); reg != nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// service parses the package of service name, or says how to make it.
func (a *appDir) service(name string) (*pkg, error) {
	if err := checkName("service", name); err != nil {
		return nil, err
	}
	d := filepath.Join(a.root, name)
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("the app has no service %s: make it with troupe new service %s", name, name)
	}
	return parseDir(d)
}
