//go:build unix

package outbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// fileLock is a flock(2) lock. The kernel ties it to the open file, so
// two outboxes in one process exclude each other as two processes do, and
// the lock goes away with a killed process.
type fileLock struct {
	mu sync.Mutex // one holder within this outbox too
	f  *os.File
}

func openFileLock(path string) (relayLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("outbox: relay lock file: %w", err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) try() (bool, error) {
	if !l.mu.TryLock() {
		return false, nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	l.mu.Unlock()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return false, fmt.Errorf("outbox: relay lock: %w", err)
}

func (l *fileLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.mu.Unlock()
}

func (l *fileLock) close() { _ = l.f.Close() }
