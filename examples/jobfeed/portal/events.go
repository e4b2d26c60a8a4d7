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

// FailureData is implemented by the data of the events that say a
// candidate's resume could not be read, for good.
type FailureData interface {
	// PortalFailure returns the candidate's id and why.
	PortalFailure() (candidateID, reason string)
}

// JobMatchData is implemented by the data of the events that say a job
// was matched against every profile.
type JobMatchData interface {
	// PortalJobMatched returns the job's id and how many candidates it
	// suited.
	PortalJobMatched() (jobID string, candidates int)
}

// The statuses of a registration, in GET /candidates/{id} and the counts
// of GET /candidates.
const (
	// StatusRegistered: stored and announced; the profile service has not
	// read the resume yet. Not terminal.
	StatusRegistered = "registered"
	// StatusProfiled: the resume was read into a profile, which the
	// recommendation service matches against every open job. Terminal.
	StatusProfiled = "profiled"
	// StatusProfileFailed: the profile service gave up on the resume (the
	// portal did not know the candidate, or stayed unreachable through
	// every retry); the reason says which. Terminal.
	StatusProfileFailed = "profile_failed"
)

// The statuses of a job, in GET /jobs/{id} and the counts of GET /jobs.
const (
	// JobStatusPosted: stored and announced; not matched yet. Not terminal.
	JobStatusPosted = "posted"
	// JobStatusMatched: matched against every profile; it suited at least one
	// candidate, each of whom hears of it. Terminal.
	JobStatusMatched = "matched"
	// JobStatusUnmatched: matched against every profile, and it suited none
	// (candidates who register later may still match it). Terminal.
	JobStatusUnmatched = "unmatched"
)
