// Package chance makes the example's simulated failures repeatable: a
// decision is a hash of what it is about, not a roll of the dice, so every
// process (and a test) reaches the same decision for the same order, and a
// redelivered event meets the same fate as the first delivery.
package chance

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
)

// Unit returns a number in [0, 1) determined by parts, spread evenly over
// the interval for different parts.
func Unit(parts ...string) float64 {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
