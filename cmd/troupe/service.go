package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// newService generates a service package with a Register function and
// registers it in main.go.
func newService(dir string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("new service", flag.ContinueOnError)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("new service takes one name: troupe new service billing")
	}
	name := pos[0]
	if err := checkName("service", name); err != nil {
		return err
	}
	if reserved[name] {
		return usagef("service name %q is taken by the generated code: pick another, like %s_service", name, name)
	}
	a, err := openApp(dir, "service")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(a.root, name)); err == nil {
		return fmt.Errorf("directory %s is already there; nothing was changed (pick another name)", name)
	}
	src, err := render("service.go.tmpl", map[string]string{"App": filepath.Base(a.root), "Service": name})
	if err != nil {
		return err
	}
	c := &change{root: a.root}
	c.add(filepath.Join(name, name+".go"), src)

	importPath := a.module + "/" + name
	mainSrc, err := os.ReadFile(filepath.Join(a.root, "main.go"))
	if err != nil {
		return err
	}
	edited, appVar, err := registerInMain(mainSrc, importPath, name)
	if err != nil {
		return err
	}
	if edited != nil {
		c.edit("main.go", edited)
	}
	if err := c.apply(out); err != nil {
		return err
	}
	if edited == nil {
		fmt.Fprintf(out, "main.go has no app.Main() call in a parenthesized import file to add to; add import %q and %s.Register(%s) before it runs\n", importPath, name, appVar)
	}
	return nil
}

// registerInMain returns main.go with pkg imported and pkg.Register(app)
// called just before app.Main() (or app.Run, app.Start), or nil when it
// finds no such call to put it before. It refuses when main.go already
// imports the package.
func registerInMain(src []byte, importPath, pkg string) ([]byte, string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", src, parser.ParseComments)
	if err != nil {
		return nil, "app", fmt.Errorf("%v: fix main.go first", err)
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
			return nil, "app", fmt.Errorf("main.go already imports %s; nothing was changed", importPath)
		}
	}
	var importDecl *ast.GenDecl
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT && gd.Lparen.IsValid() {
			importDecl = gd
			break
		}
	}
	// The statement that runs the app: app.Main(), or a call on its result.
	var runStmt ast.Stmt
	appVar := "app"
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "main" || fd.Recv != nil || fd.Body == nil {
			return true
		}
		for _, st := range fd.Body.List {
			if runStmt != nil {
				break
			}
			ast.Inspect(st, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok || runStmt != nil {
					return runStmt == nil
				}
				if id, ok := sel.X.(*ast.Ident); ok && (sel.Sel.Name == "Main" || sel.Sel.Name == "Run" || sel.Sel.Name == "Start") {
					runStmt, appVar = st, id.Name
				}
				return true
			})
		}
		return false
	})
	if runStmt == nil || importDecl == nil {
		return nil, appVar, nil
	}
	edits := []struct {
		off  int
		text string
	}{
		{fset.Position(importDecl.Rparen).Offset, strconv.Quote(importPath) + "\n"},
		{fset.Position(runStmt.Pos()).Offset, pkg + ".Register(" + appVar + ")\n"},
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].off > edits[j].off })
	out := src
	for _, e := range edits {
		out = append(out[:e.off:e.off], append([]byte(e.text), out[e.off:]...)...)
	}
	out, err = format.Source(out)
	if err != nil {
		return nil, appVar, fmt.Errorf("editing main.go: %v", err)
	}
	return out, appVar, nil
}
