package notification

import "testing"

// Events of shops from before cancellations have no subject: they all
// told of a shipment, and the orders service must read them so.
func TestToldDefaultsToShipped(t *testing.T) {
	for _, tc := range []struct{ subject, want string }{
		{"", SubjectShipped}, {SubjectShipped, SubjectShipped}, {SubjectCancelled, SubjectCancelled},
	} {
		if got := (CustomerNotifiedV1{Subject: tc.subject}).Told(); got != tc.want {
			t.Errorf("Told() with subject %q = %q, want %q", tc.subject, got, tc.want)
		}
	}
}
