package topology_test

import (
	"context"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/topology"
)

type UserRegistered struct {
	Email string `json:"email"`
}

type WelcomeMailSent struct {
	Email string `json:"email"`
}

// The graph of a mailer that answers user_registered with welcome_mail_sent,
// drawn as a Mermaid flowchart.
func ExampleGraph_Mermaid() {
	userRegistered := troupe.NewTopic[UserRegistered]("user_registered", 1)
	welcomeMailSent := troupe.NewTopic[WelcomeMailSent]("welcome_mail_sent", 1)

	app := troupe.New(troupe.Config{Name: "signup"})
	app.Service("users").Publishes(userRegistered)
	mailer := app.Service("mailer").Publishes(welcomeMailSent)
	troupe.Subscribe(mailer, userRegistered, "send-welcome", func(context.Context, troupe.Event[UserRegistered]) error {
		return nil
	}, troupe.Emits(welcomeMailSent), troupe.MaxAttempts(5))

	if err := topology.FromApp(app).Mermaid(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// flowchart LR
	//     svc_mailer["mailer"]
	//     svc_users["users"]
	//     topic_user__registered(["user_registered.v1"])
	//     topic_welcome__mail__sent(["welcome_mail_sent.v1"])
	//     sub_mailer_dsend_hwelcome[["send-welcome"]]
	//     dlq_mailer_dsend_hwelcome[("dead letters<br/>mailer.send-welcome")]
	//     svc_users --> topic_user__registered
	//     topic_user__registered --> sub_mailer_dsend_hwelcome
	//     sub_mailer_dsend_hwelcome --> svc_mailer
	//     sub_mailer_dsend_hwelcome -->|emits| topic_welcome__mail__sent
	//     sub_mailer_dsend_hwelcome -.->|after 5 attempts| dlq_mailer_dsend_hwelcome
	//     classDef service fill:#e8f0fe,stroke:#1a73e8
	//     classDef topic fill:#fef7e0,stroke:#f9ab00
	//     classDef subscription fill:#f1f3f4,stroke:#5f6368
	//     classDef deadletters fill:#fce8e6,stroke:#d93025
	//     class svc_mailer,svc_users service
	//     class topic_user__registered,topic_welcome__mail__sent topic
	//     class sub_mailer_dsend_hwelcome subscription
	//     class dlq_mailer_dsend_hwelcome deadletters
}
