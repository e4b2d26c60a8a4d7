package main

import (
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	cases := []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{5}, Stat{Median: 5, Min: 5, Max: 5, N: 1}},
		{[]float64{9, 1, 5}, Stat{Median: 5, Min: 1, Max: 9, N: 3}},
		{[]float64{4, 1, 3, 10}, Stat{Median: 3.5, Min: 1, Max: 10, N: 4}},
	}
	for _, c := range cases {
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	in := []float64{3, 2, 1}
	Summarize(in)
	if in[0] != 3 || in[2] != 1 {
		t.Errorf("Summarize sorted its argument: %v", in)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 500 * time.Millisecond, 99: 990 * time.Millisecond,
		99.9: 999 * time.Millisecond, 100: time.Second, 0.01: time.Millisecond} {
		if got := Percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := Table{Header: []string{"client", "events/s>"}}
	tb.Add("troupe", "1,000")
	tb.Add("a|b") // a pipe is escaped, a missing cell left empty
	want := "| client | events/s |\n| --- | ---: |\n| troupe | 1,000 |\n| a\\|b |  |\n"
	if got := tb.Markdown(); got != want {
		t.Errorf("Markdown:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[float64]string{0: "0.00", 12.345: "12.35", 100: "100", 1234567.4: "1,234,567", -2500: "-2,500"} {
		if got := Num(in); got != want {
			t.Errorf("Num(%v) = %q, want %q", in, got, want)
		}
	}
	if got := Int(7); got != "7" {
		t.Errorf("Int(7) = %q", got)
	}
	if got := Int(1_000_000); got != "1,000,000" {
		t.Errorf("Int(1e6) = %q", got)
	}
	if got := Ratio(3, 2); got != "1.50×" {
		t.Errorf("Ratio = %q", got)
	}
	if got := Ratio(3, 0); got != "–" {
		t.Errorf("Ratio by zero = %q", got)
	}
	if got := MedMinMax(Summarize([]float64{1, 2, 3}), f1); got != "2.0 (1.0–3.0)" {
		t.Errorf("MedMinMax = %q", got)
	}
}

// TestRenderTargets checks that the targets table compares medians and
// marks a miss.
func TestRenderTargets(t *testing.T) {
	m := func(client string, pub, con float64) *Measure {
		return &Measure{Scenario: "throughput", Broker: "rabbitmq", Client: client,
			samples: map[string][]float64{"publish": {pub, pub * 2, pub / 2}, "consume": {con}}}
	}
	plan := []*Measure{m("troupe", 100, 100), m("raw", 200, 100), m("watermill", 10, 50)}
	got := renderTargets(&env{}, plan)
	for _, want := range []string{
		"| rabbitmq publish: troupe ≥ 70% of raw | 50% | **no** |",
		"| rabbitmq consume: troupe ≥ 70% of raw | 100% | yes |",
		"| rabbitmq publish: troupe ≥ 3.0× Watermill | 10.00× | yes |",
		"| rabbitmq consume: troupe ≥ 3.0× Watermill | 2.00× | **no** |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}

func TestGroups(t *testing.T) {
	m := func(s, b string) *Measure { return &Measure{Scenario: s, Broker: b} }
	plan := []*Measure{m("throughput", "embedded"), m("throughput", "embedded"), m("throughput", "nats"), m("flow", "embedded"), m("flow", "embedded")}
	g := groups(plan)
	if len(g) != 3 || len(g[0]) != 2 || len(g[1]) != 1 || len(g[2]) != 2 || g[1][0] != plan[2] {
		t.Errorf("groups = %v", g)
	}
}
