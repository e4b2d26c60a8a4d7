package outbox

import (
	"context"
	"fmt"
	"sync"
)

// relayLock lets one SQLite relay of a table publish at a time, across
// processes. PostgreSQL relays use an advisory lock instead and need none.
type relayLock interface {
	// try takes the lock without waiting; false means another relay has it.
	try() (bool, error)
	release()
	close()
}

// newRelayLock returns the lock of the outbox's table: for a SQLite file,
// an exclusive advisory lock on a file beside it (released by the kernel
// when the holder dies, so a crashed relay never blocks the others); for
// an in-memory database, a lock within this outbox.
func (ob *Outbox) newRelayLock(ctx context.Context) (relayLock, error) {
	if ob.d != SQLite {
		return nil, nil
	}
	var file string
	if err := ob.db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return nil, fmt.Errorf("outbox: find the SQLite file: %w", err)
	}
	if file == "" {
		return &memLock{}, nil
	}
	return openFileLock(file + "-" + ob.t.outbox + ".relay-lock")
}

type memLock struct{ mu sync.Mutex }

func (l *memLock) try() (bool, error) { return l.mu.TryLock(), nil }
func (l *memLock) release()           { l.mu.Unlock() }
func (l *memLock) close()             {}
