package users

import (
	"time"

	"github.com/troupe-go/troupe"
)

// Registered is published once for every user the service creates, in the
// same database transaction as the user's row: the user and the event
// commit together or not at all. Its correlation id is the user's id, so
// everything that follows from a registration shares it.
var Registered = troupe.NewTopic[RegisteredV1]("user_registered", 1)

// RegisteredV1 is the data of a [Registered] event, version 1.
type RegisteredV1 struct {
	// UserID identifies the user; it is also the correlation id.
	UserID string `json:"user_id"`
	// Name is how the user wants to be addressed.
	Name string `json:"name"`
	// Email is the user's address, its domain in lower case.
	Email string `json:"email"`
	// RegisteredAt is when the user's row was written.
	RegisteredAt time.Time `json:"registered_at"`
}

// Deleted is published once for every user the service deletes, in the
// same transaction as the row's removal.
var Deleted = troupe.NewTopic[DeletedV1]("user_deleted", 1)

// DeletedV1 is the data of a [Deleted] event, version 1.
type DeletedV1 struct {
	// UserID identifies the user that is gone.
	UserID string `json:"user_id"`
	// DeletedAt is when the row was removed.
	DeletedAt time.Time `json:"deleted_at"`
}
