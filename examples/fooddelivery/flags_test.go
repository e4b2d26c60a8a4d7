package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		args, rest []string
		want       exampleFlags
	}{
		{nil, nil, exampleFlags{}},
		{[]string{"--simulate", "10", "--http", "off", "-restaurant-failure-rate=0.5"}, []string{"--http", "off"}, exampleFlags{simulate: 10, failureRate: 0.5}},
		{[]string{"--broker=nats://x:4222", "--payment-crash-rate", "0.1", "--services", "payment"}, []string{"--broker=nats://x:4222", "--services", "payment"}, exampleFlags{crashRate: 0.1}},
		{[]string{"graph", "--format", "dot"}, []string{"graph", "--format", "dot"}, exampleFlags{}},
		{[]string{"--simulate-rate", "50", "--simulate", "5"}, nil, exampleFlags{simulate: 5, simulateRate: 50}},
	} {
		var f exampleFlags
		rest, err := parseOwnFlags(tc.args, &f, io.Discard)
		if err != nil || f != tc.want || !slices.Equal(rest, tc.rest) {
			t.Errorf("parseOwnFlags(%q) = %q, %+v, %v; want %q, %+v", tc.args, rest, f, err, tc.rest, tc.want)
		}
	}
	var f exampleFlags
	if _, err := parseOwnFlags([]string{"--data", "x", "-h"}, &f, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, bad := range [][]string{{"--simulate", "many"}, {"--restaurant-failure-rate", "1.5"}, {"--simulate", "-1"}} {
		if _, err := parseOwnFlags(bad, &f, io.Discard); err == nil {
			t.Errorf("parseOwnFlags(%q) accepted it", bad)
		}
	}
}
