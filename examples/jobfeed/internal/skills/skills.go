// Package skills is the job feed's small vocabulary of skills and its
// resume parser. The portal checks the skills of a job against the
// vocabulary, the profile service reads a resume with [Parse], and the
// recommendation service compares the two, so all three agree on what a
// skill is called.
//
// The parser is deliberately simple, and its rules are the documentation:
//
//   - A skill is found when one of its names appears in the resume as a whole
//     word, ignoring case: "PostgreSQL", "postgres" and "Postgres" all give
//     "postgresql". Names with symbols ("c++", "c#", "node.js") match too.
//   - "Go" is the exception: the English verb is too common, so only "Go"
//     or "GO" written with a capital G, or "golang" in any case, counts.
//   - Years of experience are the largest number N in phrases such as
//     "N years", "N+ years", "N yrs" or "N years of experience"; no such
//     phrase means 0. Numbers above 60 are ignored as not being years of
//     experience.
package skills

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// names maps every name the parser recognises, in lower case, to its
// canonical skill.
var names = map[string]string{
	"go": "go", "golang": "go",
	"python":     "python",
	"java":       "java",
	"kotlin":     "kotlin",
	"javascript": "javascript", "js": "javascript",
	"typescript": "typescript", "ts": "typescript",
	"rust": "rust",
	"c++":  "c++", "cpp": "c++",
	"c#": "c#", "csharp": "c#",
	"ruby": "ruby", "rails": "ruby",
	"php":        "php",
	"swift":      "swift",
	"sql":        "sql",
	"postgresql": "postgresql", "postgres": "postgresql",
	"mysql":   "mysql",
	"mongodb": "mongodb", "mongo": "mongodb",
	"redis":      "redis",
	"kafka":      "kafka",
	"rabbitmq":   "rabbitmq",
	"nats":       "nats",
	"docker":     "docker",
	"kubernetes": "kubernetes", "k8s": "kubernetes",
	"terraform": "terraform",
	"aws":       "aws",
	"gcp":       "gcp",
	"azure":     "azure",
	"linux":     "linux",
	"react":     "react",
	"vue":       "vue",
	"node.js":   "node.js", "nodejs": "node.js", "node": "node.js",
	"graphql":          "graphql",
	"grpc":             "grpc",
	"spark":            "spark",
	"pandas":           "pandas",
	"machine-learning": "machine-learning", "ml": "machine-learning",
}

// Known returns the canonical skills, sorted.
func Known() []string {
	return slices.Sorted(maps.Keys(setOf(slices.Collect(maps.Values(names)))))
}

func setOf(s []string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

// Canonical returns the canonical name of skill (any of its names, any
// case) and whether the vocabulary knows it.
func Canonical(skill string) (string, bool) {
	c, ok := names[strings.ToLower(strings.TrimSpace(skill))]
	return c, ok
}

// word is a run of letters, digits and the symbols that skill names use.
var word = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9+#.\-]*`)

// yearsRe finds "5 years", "5+ years", "5 yrs", "12 year".
var yearsRe = regexp.MustCompile(`(?i)\b(\d{1,3})\s*\+?\s*(?:years?|yrs?)\b`)

// Parse reads a resume and returns the canonical skills it names, sorted,
// and the years of experience it states, by the rules of the package
// documentation.
func Parse(resume string) (skills []string, years int) {
	found := make(map[string]bool)
	for _, w := range word.FindAllString(resume, -1) {
		// A word at the end of a sentence carries its full stop ("Go.",
		// "node.js."); a skill name never ends in one.
		w = strings.TrimRight(w, ".-")
		lw := strings.ToLower(w)
		if lw == "go" && w != "Go" && w != "GO" {
			continue
		}
		if c, ok := names[lw]; ok {
			found[c] = true
		}
	}
	for _, m := range yearsRe.FindAllStringSubmatch(resume, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil && n <= 60 {
			years = max(years, n)
		}
	}
	return slices.Sorted(maps.Keys(found)), years
}
