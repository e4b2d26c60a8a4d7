package main

import (
	"slices"
	"strings"
	"testing"
)

func TestFailRateFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rate float64
		rest []string
		err  string
	}{
		{[]string{"--http", "off"}, 0, []string{"--http", "off"}, ""},
		{[]string{"--fail-rate", "0.3", "--http", "off"}, 0.3, []string{"--http", "off"}, ""},
		{[]string{"--services", "payment", "--fail-rate=1"}, 1, []string{"--services", "payment"}, ""},
		{[]string{"--fail-rate"}, 0, nil, "needs a fraction"},
		{[]string{"--fail-rate", "1.5"}, 0, nil, `--fail-rate "1.5": give a fraction between 0 and 1`},
		{[]string{"--fail-rate=lots"}, 0, nil, `--fail-rate "lots"`},
	} {
		rate, rest, err := failRate(tc.args)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("failRate(%q) error %v, want %q", tc.args, err, tc.err)
			}
		case err != nil || rate != tc.rate || !slices.Equal(rest, tc.rest):
			t.Errorf("failRate(%q) = %v, %q, %v; want %v, %q", tc.args, rate, rest, err, tc.rate, tc.rest)
		}
	}
}
