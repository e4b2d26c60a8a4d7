package main

import (
	"flag"
	"fmt"
	"go/ast"
	"io"
	"os"
	"path"
	"path/filepath"
)

// newSubscriber generates a handler stub for a topic in a service's package,
// with its test, and subscribes it in the service's Register.
func newSubscriber(dir string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("new subscriber", flag.ContinueOnError)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return usagef("new subscriber takes a topic, a service and a name: troupe new subscriber order_placed payment charge")
	}
	topic, service, name := pos[0], pos[1], pos[2]
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if err := checkName("service", service); err != nil {
		return err
	}
	if err := checkName("subscription", name); err != nil {
		return err
	}
	a, err := openApp(dir, "subscriber")
	if err != nil {
		return err
	}
	p, err := a.service(service)
	if err != nil {
		return err
	}
	topics, err := a.findTopics()
	if err != nil {
		return err
	}
	var t *topicDecl
	for i := range topics {
		if topics[i].name == topic {
			t = &topics[i]
		}
	}
	if t == nil {
		return fmt.Errorf("the app declares no topic %s: declare it with troupe new topic %s --version 1 --service NAME (the service that publishes it)", topic, topic)
	}
	if t.typeName == "" || t.dir == "." {
		return fmt.Errorf("topic %s is declared as %s in %s, in a shape this generator cannot refer to; write the subscription by hand", topic, t.varName, t.dir)
	}
	data := map[string]string{
		"Service": service, "Topic": topic, "Name": name,
		"Func": camel(name, false), "Camel": camel(name, true), "Subscribe": "subscribe" + camel(name, true),
		"TopicRef": t.varName, "TypeRef": t.typeName,
	}
	if t.dir != service {
		pkgName := path.Base(t.dir)
		data["TopicImport"] = a.module + "/" + t.dir
		data["TopicRef"] = pkgName + "." + t.varName
		data["TypeRef"] = pkgName + "." + t.typeName
	}
	for _, id := range []string{data["Func"], data["Subscribe"]} {
		if p.declares(id) {
			return fmt.Errorf("package %s already declares %s; nothing was changed", service, id)
		}
	}
	c := &change{root: a.root}
	for _, f := range []struct{ tmpl, file string }{
		{"subscriber.go.tmpl", name + ".go"},
		{"subscriber_test.go.tmpl", name + "_test.go"},
	} {
		src, err := render(f.tmpl, data)
		if err != nil {
			return err
		}
		c.add(filepath.Join(service, f.file), src)
	}

	// Call subscribeName(app, svc) at the end of Register.
	call := ""
	file, reg := p.register()
	if reg != nil {
		appVar, svcVar := registerVars(reg)
		if appVar != "" && svcVar != "" {
			call = fmt.Sprintf("%s(%s, %s)", data["Subscribe"], appVar, svcVar)
			old, err := os.ReadFile(filepath.Join(a.root, service, file))
			if err != nil {
				return err
			}
			// A placeholder "_ = svc" goes: the call uses svc now.
			at, end := p.fset.Position(reg.Body.Rbrace).Offset, -1
			for _, st := range reg.Body.List {
				if as, ok := st.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 &&
					isIdent(as.Lhs[0], "_") && isIdent(as.Rhs[0], svcVar) {
					at, end = p.fset.Position(st.Pos()).Offset, p.fset.Position(st.End()).Offset
				}
			}
			text := call + "\n"
			if end >= 0 {
				old, text = append(old[:at:at], old[end:]...), call
			}
			edited, err := insert(old, at, text)
			if err != nil {
				return fmt.Errorf("editing %s: %v", file, err)
			}
			c.edit(filepath.Join(service, file), edited)
		}
	}
	if err := c.apply(out); err != nil {
		return err
	}
	if call == "" {
		fmt.Fprintf(out, "found no svc := app.Service(...) in %s.Register; call %s(app, svc) there yourself\n", service, data["Subscribe"])
	}
	return nil
}

// registerVars returns the names Register gives the app (its *troupe.App
// parameter) and the service (the variable assigned app.Service(...)).
func registerVars(reg *ast.FuncDecl) (appVar, svcVar string) {
	for _, f := range reg.Type.Params.List {
		if star, ok := f.Type.(*ast.StarExpr); ok {
			if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "App" && len(f.Names) == 1 {
				appVar = f.Names[0].Name
			}
		}
	}
	for _, st := range reg.Body.List {
		as, ok := st.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			continue
		}
		found := false
		ast.Inspect(as.Rhs[0], func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Service" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == appVar {
					found = true
				}
			}
			return !found
		})
		if id, ok := as.Lhs[0].(*ast.Ident); ok && found && svcVar == "" {
			svcVar = id.Name
		}
	}
	return appVar, svcVar
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
