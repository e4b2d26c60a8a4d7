//go:build !unix

package outbox

// On systems without flock, SQLite relays exclude each other only within
// one outbox: run one relay process per SQLite file there.
func openFileLock(string) (relayLock, error) { return &memLock{}, nil }
