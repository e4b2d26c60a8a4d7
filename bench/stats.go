package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Stat summarizes the samples of one metric over repeated runs.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median, min and max of samples. The median of an
// even count is the mean of the two middle samples. An empty slice gives a
// zero Stat with N 0.
func Summarize(samples []float64) Stat {
	if len(samples) == 0 {
		return Stat{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method, or 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9/100*1000 = 999.0000000000001)
	// from moving the rank up by one.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Table is a Markdown table.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row; cells beyond the header are dropped, missing ones are
// left empty.
func (t *Table) Add(cells ...string) {
	row := make([]string, len(t.Header))
	copy(row, cells)
	t.Rows = append(t.Rows, row)
}

// Markdown renders the table with a header separator; columns whose header
// starts with a digit-like measure are right-aligned when marked with a
// trailing ">" in the header (the mark is not printed).
func (t *Table) Markdown() string {
	var b strings.Builder
	sep := make([]string, len(t.Header))
	head := make([]string, len(t.Header))
	for i, h := range t.Header {
		if name, ok := strings.CutSuffix(h, ">"); ok {
			head[i], sep[i] = name, "---:"
		} else {
			head[i], sep[i] = h, "---"
		}
	}
	line := func(cells []string) {
		b.WriteString("| ")
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(strings.ReplaceAll(c, "|", `\|`))
		}
		b.WriteString(" |\n")
	}
	line(head)
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// Num formats a rate or count with thousands separators and no decimals
// above 100, two significant decimals below.
func Num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	if math.Abs(v) < 100 {
		return fmt.Sprintf("%.2f", v)
	}
	s := fmt.Sprintf("%.0f", math.Round(v))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Int formats an integer with thousands separators.
func Int(v int) string {
	if v > -100 && v < 100 {
		return fmt.Sprint(v)
	}
	return Num(float64(v))
}

// Ratio formats a/b as "1.23×", or "–" when b is zero.
func Ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// Ms formats a duration as milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// MedMinMax renders a Stat as "median (min–max)".
func MedMinMax(s Stat, f func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}
