// Package api holds what the food-delivery services' HTTP APIs share
// beyond examples/internal/httpjson: which references a URL may carry.
package api

// ValidRef reports whether s can be an order id or a customer name in a
// URL: 1 to 100 characters, none of them a control character.
func ValidRef(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
