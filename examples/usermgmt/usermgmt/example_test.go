package usermgmt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
)

// Register a user and wait for the welcome mail: the answer is 201 once
// the mailer has sent it, and the mail is in the sink.
func ExampleNewApp() {
	dir, _ := os.MkdirTemp("", "usermgmt-example-")
	defer os.RemoveAll(dir)
	sink := mailsink.New("127.0.0.1:0")
	app, err := usermgmt.NewApp(troupe.Config{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
	}, &usermgmt.Options{Sink: sink})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)

	req, _ := http.NewRequest("POST", "http://"+app.HTTPAddr()+"/users",
		strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
	req.Header.Set("Prefer", "wait=10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var user struct {
		WelcomeMail struct{ Status string } `json:"welcome_mail"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&user)
	fmt.Println(resp.Status, "welcome mail", user.WelcomeMail.Status)
	for _, m := range sink.Mails("ada@example.com") {
		fmt.Println(m.To, m.Subject)
	}
	// Output:
	// 201 Created welcome mail sent
	// [ada@example.com] Welcome, Ada!
}
