package troupe_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/troupetest"
)

// userRegisteredV1 had one name field; v2 splits it.
type userRegisteredV1 struct {
	Name string `json:"name"`
}

type userRegisteredV2 struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

func upcastUser(old userRegisteredV1) (userRegisteredV2, error) {
	first, last, ok := strings.Cut(old.Name, " ")
	if !ok {
		return userRegisteredV2{}, errors.New("name has no space")
	}
	return userRegisteredV2{First: first, Last: last}, nil
}

func TestUpcastersTurnOldVersionsIntoTheCurrentOne(t *testing.T) {
	onBrokers(t, testUpcasters)
}

func testUpcasters(t *testing.T, newApp func(troupe.Config) *troupe.App) {
	users := troupe.NewTopic[userRegisteredV2]("user_registered", 2)
	troupe.Upcast(users, 1, upcastUser)
	if got := users.Versions(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("Versions() = %v, want [1 2]", got)
	}
	app := newApp(troupe.Config{Name: "versions"})
	app.Service("users").Publishes(users)
	seen := make(chan troupe.Event[userRegisteredV2], 4)
	troupe.Subscribe(app.Service("mailer"), users, "welcome", func(_ context.Context, ev troupe.Event[userRegisteredV2]) error {
		seen <- ev
		return nil
	})
	troupetest.Start(t, app)

	raw := func(id, typ, data string) {
		t.Helper()
		m := &transport.Message{ID: id, Type: typ, Source: "/legacy", Time: time.Now(), DataContentType: transport.ContentTypeJSON, Data: []byte(data)}
		if err := app.Transport().Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	raw("old-1", "user_registered.v1", `{"name":"Ada Lovelace"}`)
	raw("future-1", "user_registered.v3", `{"first":"A","last":"B","middle":"C"}`)
	raw("old-bad", "user_registered.v1", `{"name":"Plato"}`)
	if err := troupe.Publish(app.Context(context.Background()), users, userRegisteredV2{First: "Alan", Last: "Turing"}); err != nil {
		t.Fatal(err)
	}

	got := map[string]userRegisteredV2{}
	for len(got) < 2 {
		select {
		case ev := <-seen:
			got[ev.Data.First] = ev.Data
			if ev.Data.First == "Ada" && ev.Type != "user_registered.v1" {
				t.Errorf("upcast event keeps its wire type, got %q", ev.Type)
			}
		case <-time.After(troupetest.DefaultTimeout):
			t.Fatalf("handled %v, want Ada (upcast from v1) and Alan (v2)", got)
		}
	}
	if got["Ada"].Last != "Lovelace" || got["Alan"].Last != "Turing" {
		t.Errorf("handled %v", got)
	}
	dls := troupetest.DeadLetters(t, app, "mailer.welcome", 2)
	reasons := map[string]string{}
	for _, dl := range dls {
		reasons[dl.Message.ID] = string(dl.Reason) + ": " + dl.Error
	}
	if r := reasons["future-1"]; !strings.Contains(r, "unknown event version") || !strings.Contains(r, "upcasts v[1]") {
		t.Errorf("v3 dead letter: %q, want unknown version naming what the program reads", r)
	}
	if r := reasons["old-bad"]; !strings.Contains(r, "malformed") || !strings.Contains(r, "name has no space") {
		t.Errorf("failed upcast dead letter: %q, want malformed with the upcaster's error", r)
	}
}

func TestUpcastFromANewerVersionIsADeclarationError(t *testing.T) {
	users := troupe.NewTopic[userRegisteredV2]("user_registered", 2)
	troupe.Upcast(users, 2, func(v userRegisteredV2) (userRegisteredV2, error) { return v, nil })
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "versions"}))
	app.Service("users").Publishes(users)
	err := app.Validate()
	if err == nil || !strings.Contains(err.Error(), "Upcast from version 2: upcasters read older versions, 1 to 1") {
		t.Errorf("Validate() = %v", err)
	}
}

func TestUpcastTypeNamesWhatEachUpcasterDecodes(t *testing.T) {
	users := troupe.NewTopic[userRegisteredV2]("user_registered", 2)
	if got := users.UpcastType(1); got != nil {
		t.Errorf("UpcastType(1) before Upcast = %v, want nil", got)
	}
	troupe.Upcast(users, 1, upcastUser)
	var topic troupe.AnyTopic = users
	if got, want := topic.UpcastType(1), reflect.TypeFor[userRegisteredV1](); got != want {
		t.Errorf("UpcastType(1) = %v, want %v", got, want)
	}
	if got := topic.UpcastType(2); got != nil {
		t.Errorf("UpcastType(2), the current version, = %v, want nil", got)
	}
}
