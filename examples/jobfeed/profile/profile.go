// Package profile is the candidate profile service of the job feed. When a
// candidate registers it fetches the registration from the portal (the
// event carries only the id), reads the resume into skills and years of
// experience with the skills package's keyword parser, and publishes
// [Created] with everything the services after it need.
//
// It keeps nothing: a profile is a pure function of the registration,
// which the portal keeps, so a redelivered event is read again and
// published under the same event id, which the subscribers' inboxes skip.
// When it gives up on a registration (the portal does not know the
// candidate, or stays unreachable through every attempt) it publishes
// [Failed] instead, the declared end of that registration (troupe.OnFailure).
package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/skills"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
)

// ServiceName is the profile service's name in the app and on --services.
const ServiceName = "profile"

// Created is published once a candidate's resume has been read. It carries
// the whole profile (event-carried state): the recommendation service
// matches jobs with it, and the portal shows it, without asking anyone.
var Created = troupe.NewTopic[CreatedV1]("profile_created", 1)

// Failed is published when the profile service gives up on a
// registration: the portal answered that it does not know the candidate,
// or could not be reached through every attempt. The portal shows the
// candidate as "profile_failed", with the reason.
var Failed = troupe.NewTopic[FailedV1]("profile_failed", 1)

// FailedV1 is the data of a [Failed] event, version 1.
type FailedV1 struct {
	CandidateID string `json:"candidate_id"`
	Reason      string `json:"reason"`
}

// PortalFailure makes FailedV1 a [portal.FailureData].
func (e FailedV1) PortalFailure() (string, string) { return e.CandidateID, e.Reason }

// CreatedV1 is the data of a [Created] event, version 1.
type CreatedV1 struct {
	CandidateID string             `json:"candidate_id"`
	Name        string             `json:"name"`
	Email       string             `json:"email"`
	Preferences portal.Preferences `json:"preferences"`
	// Skills are canonical skill names found in the resume, sorted.
	Skills []string `json:"skills"`
	// YearsOfExperience is the largest "N years" the resume states.
	YearsOfExperience int `json:"years_of_experience"`
}

// PortalProfile makes CreatedV1 a [portal.ProfileData].
func (e CreatedV1) PortalProfile() (string, portal.Profile) {
	return e.CandidateID, portal.Profile{Name: e.Name, Email: e.Email, Preferences: e.Preferences,
		Skills: e.Skills, YearsOfExperience: e.YearsOfExperience}
}

// Options configure the profile service.
type Options struct {
	// PortalURL returns the base URL of the portal's HTTP API, such as
	// "http://localhost:8080", where registrations are fetched. It is a
	// function because the portal's address may be known only once the app
	// serves HTTP; until then it returns "", and the event is retried.
	// Required.
	PortalURL func() string
	// Client fetches registrations. Default: a client with a 10s timeout.
	Client *http.Client
	// Log receives one line per profile. Default: the app's logger.
	Log *slog.Logger
}

// Register declares the profile service on app.
func Register(app *troupe.App, opts Options) *troupe.Service {
	if opts.Log == nil {
		opts.Log = app.Logger()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	p := &profiler{opts: opts}
	svc := app.Service(ServiceName).Publishes(Created, Failed)
	troupe.Subscribe(svc, portal.CandidateRegistered, "read-resume", p.read, troupe.Emits(Created),
		troupe.OnFailure(Failed, func(ev troupe.Event[portal.CandidateRegisteredV1], cause error) FailedV1 {
			reason := "the profile service gave up"
			if cause != nil {
				reason = cause.Error()
			}
			return FailedV1{CandidateID: ev.Data.CandidateID, Reason: reason}
		}))
	return svc
}

type profiler struct {
	opts Options
}

// read is the handler of portal.CandidateRegistered. A retried event
// fetches and parses again and publishes the same event id, which the
// broker drops; parsing is a pure function of the registration.
func (p *profiler) read(ctx context.Context, ev troupe.Event[portal.CandidateRegisteredV1]) error {
	c, err := p.fetch(ctx, ev.Data)
	if err != nil {
		return err
	}
	sk, years := skills.Parse(c.Resume)
	if sk == nil {
		sk = []string{}
	}
	p.opts.Log.Info(fmt.Sprintf("profile: candidate %s knows %s, %d years", c.ID, describe(sk), years))
	return troupe.Publish(ctx, Created, CreatedV1{
		CandidateID: c.ID, Name: c.Name, Email: c.Email, Preferences: c.Preferences,
		Skills: sk, YearsOfExperience: years,
	})
}

// fetch reads the registration from the portal: the other half of an event
// notification.
func (p *profiler) fetch(ctx context.Context, reg portal.CandidateRegisteredV1) (portal.Candidate, error) {
	var c portal.Candidate
	if !strings.HasPrefix(reg.Href, "/") {
		return c, troupe.Permanent(fmt.Errorf("profile: candidate %s has href %q, not a path on the portal", reg.CandidateID, reg.Href))
	}
	base := strings.TrimRight(p.opts.PortalURL(), "/")
	if base == "" {
		// The app consumes events before its HTTP server starts; the
		// portal in this process answers in a moment.
		return c, fmt.Errorf("profile: the portal's HTTP API is not up yet; candidate %s will be fetched on the next attempt", reg.CandidateID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+reg.Href, nil)
	if err != nil {
		return c, troupe.Permanent(err)
	}
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return c, fmt.Errorf("profile: fetch candidate %s from the portal: %w", reg.CandidateID, err) // retried
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return c, fmt.Errorf("profile: read candidate %s: %w", reg.CandidateID, err)
	case resp.StatusCode == http.StatusNotFound:
		// The portal writes the registration in the transaction that
		// publishes the event, so it must know the candidate: a 404 will
		// not heal by retrying (a wrong --portal-url, a lost database).
		return c, troupe.Permanent(fmt.Errorf("profile: the portal at %s does not know candidate %s: %s", base, reg.CandidateID, body))
	case resp.StatusCode != http.StatusOK:
		return c, fmt.Errorf("profile: the portal answered %s for candidate %s", resp.Status, reg.CandidateID)
	}
	if err := json.Unmarshal(body, &c); err != nil || c.ID != reg.CandidateID {
		return c, troupe.Permanent(errors.Join(fmt.Errorf("profile: the portal's answer for candidate %s is not a candidate", reg.CandidateID), err))
	}
	return c, nil
}

func describe(sk []string) string {
	if len(sk) == 0 {
		return "no skill we know"
	}
	return strings.Join(sk, ", ")
}
