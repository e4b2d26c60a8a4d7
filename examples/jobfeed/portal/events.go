package portal

import (
	"time"

	"github.com/troupe-go/troupe"
)

// CandidateRegistered is published when a candidate signs up. It is an
// event notification: it says who, and where to read the rest, and nothing
// more. The resume can be long and is personal; it stays in the portal's
// database, and the one service that needs it (profile) fetches it from
// the portal's HTTP API at Href.
var CandidateRegistered = troupe.NewTopic[CandidateRegisteredV1]("candidate_registered", 1)

// CandidateRegisteredV1 is the data of a [CandidateRegistered] event,
// version 1.
type CandidateRegisteredV1 struct {
	// CandidateID identifies the candidate. It is also the correlation id
	// of every event that follows from the registration.
	CandidateID string `json:"candidate_id"`
	// Href is the candidate's path on the portal's HTTP API,
	// "/candidates/{id}".
	Href string `json:"href"`
}

// JobPosted is published when a job is posted. It carries the whole job
// (event-carried state): the recommendation service keeps its own copy of
// the open jobs from these events and never calls the portal, so it
// matches candidates even while the portal is down.
var JobPosted = troupe.NewTopic[Job]("job_posted", 1)

// Job is an open position, as posted on the portal and as carried by
// [JobPosted].
type Job struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Company string `json:"company"`
	// Location is a city, or "remote".
	Location string `json:"location"`
	// Skills are canonical skill names (see the skills vocabulary).
	Skills []string `json:"skills"`
	// MinYears is the experience the job asks for, in years.
	MinYears int       `json:"min_years"`
	PostedAt time.Time `json:"posted_at"`
}

// Frequency is how often a candidate wants to hear about new matches.
type Frequency string

// The notification frequencies a candidate can choose.
const (
	Instant Frequency = "instant" // one message per batch of new matches, at once
	Daily   Frequency = "daily"   // a digest each day
	Weekly  Frequency = "weekly"  // a digest each week
	Monthly Frequency = "monthly" // a digest each month
)

// Frequencies lists the valid frequencies, most frequent first.
var Frequencies = []Frequency{Instant, Daily, Weekly, Monthly}

// Preferences are what a candidate asks of the job feed.
type Preferences struct {
	// Frequency is how often to be notified.
	Frequency Frequency `json:"frequency"`
	// Locations are the cities the candidate would work in; remote jobs
	// match whatever they are. Empty means anywhere.
	Locations []string `json:"locations"`
}

// Profile is what the portal's read model keeps of a candidate's profile.
type Profile struct {
	Name              string      `json:"name"`
	Email             string      `json:"email"`
	Preferences       Preferences `json:"preferences"`
	Skills            []string    `json:"skills"`
	YearsOfExperience int         `json:"years_of_experience"`
}

// Match is a job found for a candidate, as the read model shows it.
type Match struct {
	JobID    string    `json:"job_id"`
	Title    string    `json:"title"`
	Company  string    `json:"company"`
	Location string    `json:"location"`
	Skills   []string  `json:"skills"`
	FoundAt  time.Time `json:"found_at"`
}

// ProfileData is implemented by the data of the events that announce a
// candidate's profile. It lets the portal's read model follow a topic
// another package declares without importing it.
type ProfileData interface {
	// PortalProfile returns the candidate's id and profile.
	PortalProfile() (candidateID string, p Profile)
}

// MatchData is implemented by the data of the events that announce jobs
// found for a candidate.
type MatchData interface {
	// PortalMatches returns the candidate's id and the jobs found.
	PortalMatches() (candidateID string, ms []Match)
}
