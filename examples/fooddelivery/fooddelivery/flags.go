package fooddelivery

import (
	"errors"
	"math"
	"strconv"
)

// The app's flag values check what they are given, so a bad value is a
// usage error that says what to give, before anything starts.

// share is a flag for a share from 0 to 1.
type share struct {
	p       *float64
	example string
}

func (f share) String() string {
	if f.p == nil {
		return "" // the zero flag.Value, unlike any default: -h shows the default
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f share) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return errors.New("use a share from 0 to 1, such as " + f.example)
	}
	*f.p = v
	return nil
}

// count is a flag for a number of orders, 0 for none.
type count struct{ p *int }

func (f count) String() string {
	if f.p == nil {
		return "" // the zero flag.Value, unlike any default: -h shows the default
	}
	return strconv.Itoa(*f.p)
}

func (f count) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return errors.New("use a number of orders, at least 1 (0: no simulation)")
	}
	*f.p = v
	return nil
}

// rate is a flag for a number per second, 0 for no limit.
type rate struct{ p *float64 }

func (f rate) String() string {
	if f.p == nil {
		return "" // the zero flag.Value, unlike any default: -h shows the default
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f rate) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return errors.New("use orders per second, such as 200, or 0 for no limit")
	}
	*f.p = v
	return nil
}
