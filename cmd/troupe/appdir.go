package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// appDir is an app directory: go.mod with its module path, and main.go.
type appDir struct {
	root   string
	module string
}

// openApp finds the app in dir, or says how to get into one.
func openApp(dir, generator string) (*appDir, error) {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no go.mod in %s: run troupe new %s inside an app directory (troupe new app NAME makes one)", dir, generator)
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
		return nil, fmt.Errorf("no main.go in %s: run troupe new %s in the app directory, the one with main.go", dir, generator)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			mod := strings.Trim(strings.TrimSpace(rest), `"`)
			return &appDir{root: dir, module: mod}, nil
		}
	}
	return nil, fmt.Errorf("%s/go.mod has no module line: fix it, or make a new app with troupe new app NAME", dir)
}

// pkg is the parsed non-test Go files of one directory.
type pkg struct {
	fset  *token.FileSet
	files map[string]*ast.File // by file name
	names []string             // sorted file names
}

func parseDir(dir string) (*pkg, error) {
	p := &pkg{fset: token.NewFileSet(), files: make(map[string]*ast.File)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(p.fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("%v: fix it before generating more code", err)
		}
		p.files[n] = f
		p.names = append(p.names, n)
	}
	sort.Strings(p.names)
	return p, nil
}

// declares reports whether the package declares name at top level.
func (p *pkg) declares(name string) bool {
	for _, f := range p.files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == name {
					return true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.Name == name {
							return true
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.Name == name {
								return true
							}
						}
					}
				}
			}
		}
	}
	return false
}

// register finds the package's Register function.
func (p *pkg) register() (string, *ast.FuncDecl) {
	for _, n := range p.names {
		for _, d := range p.files[n].Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "Register" && fd.Body != nil {
				return n, fd
			}
		}
	}
	return "", nil
}

// topicDecl is a topic variable found in the app.
type topicDecl struct {
	name, varName, typeName string
	dir                     string // relative to the app root, "." for the root
}

// findTopics lists every var X = troupe.NewTopic[T]("name", n) of the app.
func (a *appDir) findTopics() ([]topicDecl, error) {
	var out []topicDecl
	err := filepath.WalkDir(a.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != a.root && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		p, err := parseDir(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.root, path)
		for _, n := range p.names {
			for _, d := range p.files[n].Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.VAR {
					continue
				}
				for _, s := range gd.Specs {
					vs := s.(*ast.ValueSpec)
					for i, v := range vs.Values {
						if i < len(vs.Names) {
							if t, ok := topicCall(v); ok {
								t.varName, t.dir = vs.Names[i].Name, filepath.ToSlash(rel)
								out = append(out, t)
							}
						}
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// topicCall recognises troupe.NewTopic[T]("name", n).
func topicCall(e ast.Expr) (topicDecl, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) < 1 {
		return topicDecl{}, false
	}
	idx, ok := call.Fun.(*ast.IndexExpr)
	if !ok {
		return topicDecl{}, false
	}
	sel, ok := idx.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "NewTopic" {
		return topicDecl{}, false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return topicDecl{}, false
	}
	name, err := strconv.Unquote(lit.Value)
	if err != nil {
		return topicDecl{}, false
	}
	t := topicDecl{name: name}
	if id, ok := idx.Index.(*ast.Ident); ok {
		t.typeName = id.Name
	}
	return t, true
}

// insert returns src with text inserted at byte offset off, formatted.
func insert(src []byte, off int, text string) ([]byte, error) {
	out := make([]byte, 0, len(src)+len(text))
	out = append(out, src[:off]...)
	out = append(out, text...)
	out = append(out, src[off:]...)
	return format.Source(out)
}
