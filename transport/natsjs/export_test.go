package natsjs

import "time"

// SetRescanAfter shortens how long a scan of the namespace's consumers is
// trusted, for a test; the returned function restores it.
func SetRescanAfter(d time.Duration) (restore func()) {
	old := rescanAfter
	rescanAfter = d
	return func() { rescanAfter = old }
}
