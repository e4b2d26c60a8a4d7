package mailer

import (
	"time"

	"github.com/troupe-go/troupe"
)

// WelcomeMailSent is published once the SMTP server has accepted a
// user's welcome mail, in the same transaction as the mailer's record that
// the registration was handled.
var WelcomeMailSent = troupe.NewTopic[WelcomeMailSentV1]("welcome_mail_sent", 1)

// WelcomeMailSentV1 is the data of a [WelcomeMailSent] event, version 1.
type WelcomeMailSentV1 struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	// MessageID is the mail's Message-ID header, derived from the
	// user_registered event, so a mail sent again after a crash carries the
	// same one and the receiving side can tell.
	MessageID string    `json:"message_id"`
	SentAt    time.Time `json:"sent_at"`
}

// WelcomeMailSkipped is published when the user was deleted before the
// welcome mail went out, so none was sent.
var WelcomeMailSkipped = troupe.NewTopic[WelcomeMailSkippedV1]("welcome_mail_skipped", 1)

// WelcomeMailSkippedV1 is the data of a [WelcomeMailSkipped] event,
// version 1.
type WelcomeMailSkippedV1 struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// WelcomeMailFailed is published when a welcome mail cannot be sent for
// good: the SMTP server refused it permanently (a 5xx reply, such as an
// unknown mailbox) or every attempt failed.
var WelcomeMailFailed = troupe.NewTopic[WelcomeMailFailedV1]("welcome_mail_failed", 1)

// WelcomeMailFailedV1 is the data of a [WelcomeMailFailed] event, version 1.
type WelcomeMailFailedV1 struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Reason string `json:"reason"`
}
