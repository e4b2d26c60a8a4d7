package topology

import (
	"regexp"
	"testing"
)

func TestMermaidIDSafeAndDistinct(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	ids := []string{
		ExternalID, "service:a-b", "service:a_b", "service:a_hb", "service:a__b", "service:end",
		"topic:a-b", "topic:a_b", "topic:a.b", "subscription:a.b-c", "subscription:a.b_c",
		"subscription:a_d.b", "dead-letters:a.b-c", "topic:x y", "topic:é",
	}
	seen := map[string]string{}
	for _, id := range ids {
		m := mermaidID(id)
		if !safe.MatchString(m) {
			t.Errorf("mermaidID(%q) = %q: not a safe Mermaid id", id, m)
		}
		if prev, dup := seen[m]; dup {
			t.Errorf("mermaidID(%q) = mermaidID(%q) = %q", id, prev, m)
		}
		seen[m] = id
	}
}

func TestLabelsEscaped(t *testing.T) {
	if got, want := mermaidLabel(`say "hi" <b>#1`, "x"), `"say #quot;hi#quot; #lt;b#gt;#35;1<br/>x"`; got != want {
		t.Errorf("mermaidLabel = %s, want %s", got, want)
	}
	if got, want := dotQuote(`a "b" \c`, "d"), `"a \"b\" \\c\nd"`; got != want {
		t.Errorf("dotQuote = %s, want %s", got, want)
	}
}
