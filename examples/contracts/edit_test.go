package contracts

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe/contract"
	"github.com/troupe-go/troupe/topology"
)

// This file changes real exports of the example apps the way a change to
// their Go code would change them.

type schema = topology.Schema

// readExport reads the frozen export of an example app.
func readExport(t *testing.T, app string) *contract.Contract {
	t.Helper()
	c, err := contract.ReadFile(filepath.Join("testdata", "exports", app+".contract.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeContract writes c to a new file and returns its path.
func writeContract(t *testing.T, c *contract.Contract) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), c.App+"-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// copyOf copies v deeply, through JSON.
func copyOf[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func topicOf(c *contract.Contract, name string) *contract.Topic {
	for i := range c.Topics {
		if c.Topics[i].Name == name {
			return &c.Topics[i]
		}
	}
	panic("no topic " + name + " in the export of " + c.App)
}

func subOf(c *contract.Contract, ref string) *contract.Subscription {
	for i := range c.Subscriptions {
		if c.Subscriptions[i].Ref() == ref {
			return &c.Subscriptions[i]
		}
	}
	panic("no subscription " + ref + " in the export of " + c.App)
}

// only keeps the services named, with their subscriptions and the topics
// they publish or read: what the program of those services would export.
// A topic they read and do not publish is declared as coming from outside.
func only(c *contract.Contract, services ...string) {
	c.Services = slices.Sorted(slices.Values(services))
	c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(s contract.Subscription) bool { return !slices.Contains(services, s.Service) })
	var topics []contract.Topic
	for _, tp := range c.Topics {
		tp.Publishers = slices.DeleteFunc(slices.Clone(tp.Publishers), func(p string) bool { return !slices.Contains(services, p) })
		read := slices.ContainsFunc(c.Subscriptions, func(s contract.Subscription) bool { return s.Topic == tp.Name })
		if len(tp.Publishers) > 0 || read {
			tp.External = len(tp.Publishers) == 0
			topics = append(topics, tp)
		}
	}
	c.Topics = topics
}

// editTopic changes topic name as a change to its Go type would: its
// schema, and what the program's subscriptions to it read, unless they
// declared what they read.
func editTopic(c *contract.Contract, name string, f func(*schema)) {
	f(topicOf(c, name).Schema)
	for i := range c.Subscriptions {
		if s := &c.Subscriptions[i]; s.Topic == name && s.Declared == nil {
			f(s.Reads)
		}
	}
}

// declare narrows what a subscription reads to some top-level fields, as
// contract.Reads(sub, fields...) would.
func declare(c *contract.Contract, ref string, fields ...string) {
	s := subOf(c, ref)
	s.Declared = slices.Sorted(slices.Values(fields))
	reads := *s.Reads
	reads.Properties, reads.Required = map[string]*schema{}, nil
	for _, f := range s.Declared {
		reads.Properties[f] = s.Reads.Properties[f]
		if slices.Contains(s.Reads.Required, f) {
			reads.Required = append(reads.Required, f)
		}
	}
	s.Reads = &reads
}

// at returns the object that holds the field at path, and the field's
// name; lists are stepped through.
func at(s *schema, path string) (*schema, string) {
	names := strings.Split(path, ".")
	for _, n := range names[:len(names)-1] {
		s = s.Properties[n]
		for s.Items != nil {
			s = s.Items
		}
	}
	return s, names[len(names)-1]
}

func removeField(s *schema, path string) {
	obj, name := at(s, path)
	delete(obj.Properties, name)
	obj.Required = slices.DeleteFunc(obj.Required, func(r string) bool { return r == name })
}

func addField(s *schema, path string, field *schema, required bool) {
	obj, name := at(s, path)
	obj.Properties[name] = field
	if required {
		obj.Required = append(obj.Required, name)
		slices.Sort(obj.Required)
	}
}

func renameField(s *schema, path, to string) {
	obj, name := at(s, path)
	field, required := obj.Properties[name], slices.Contains(obj.Required, name)
	removeField(s, path)
	addField(obj, to, field, required)
}

func setRequired(s *schema, path string, required bool) {
	obj, name := at(s, path)
	obj.Required = slices.DeleteFunc(obj.Required, func(r string) bool { return r == name })
	if required {
		obj.Required = append(obj.Required, name)
		slices.Sort(obj.Required)
	}
}

// field returns the schema of the field at path.
func field(s *schema, path string) *schema {
	obj, name := at(s, path)
	return obj.Properties[name]
}

func str() *schema { return &schema{Type: topology.SchemaType{"string"}} }
