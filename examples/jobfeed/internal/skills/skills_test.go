package skills

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		resume string
		skills []string
		years  int
	}{
		{"Backend engineer, 6 years of experience with Go, PostgreSQL and Kubernetes.", []string{"go", "kubernetes", "postgresql"}, 6},
		{"I go to work by bike. 3 yrs of Python; before that 1 year of JS.", []string{"javascript", "python"}, 3},
		{"golang, k8s, postgres, node.js.", []string{"go", "kubernetes", "node.js", "postgresql"}, 0},
		{"C++ and C# for 10+ years; 120 years of company history does not count.", []string{"c#", "c++"}, 10},
		{"GO developer since 2015, 8 YEARS", []string{"go"}, 8},
		{"", nil, 0},
		{"Gardener, loves plants.", nil, 0},
	} {
		skills, years := Parse(tc.resume)
		if !slices.Equal(skills, tc.skills) || years != tc.years {
			t.Errorf("Parse(%q) = %v, %d; want %v, %d", tc.resume, skills, years, tc.skills, tc.years)
		}
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{"Golang": "go", " Postgres ": "postgresql", "K8S": "kubernetes", "rust": "rust"} {
		if got, ok := Canonical(in); !ok || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := Canonical("cobol"); ok {
		t.Error("cobol is known")
	}
	known := Known()
	if !slices.IsSorted(known) || !slices.Contains(known, "go") || slices.Contains(known, "golang") {
		t.Errorf("Known() = %v: want sorted canonical names only", known)
	}
}
