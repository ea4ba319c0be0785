package marker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestParseRequestedAtCalendar: a requested_at date must exist in the
// proleptic Gregorian calendar, as Python's datetime.fromisoformat
// requires (a year divisible by 100 is a leap year only when divisible by
// 400); a date that does not exist is refused, so the marker is aged by
// its mtime instead of by a wrong date.
func TestParseRequestedAtCalendar(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"2024-02-29", true},  // divisible by 4
		{"2000-02-29", true},  // divisible by 400
		{"1600-02-29", true},  // divisible by 400
		{"1900-02-29", false}, // divisible by 100, not by 400
		{"2100-02-29", false},
		{"2026-02-29", false},
		{"2026-02-28", true},
		{"2026-04-31", false},
		{"2026-06-31", false},
		{"2026-09-31", false},
		{"2026-11-31", false},
		{"2026-12-31", true},
		{"2026-01-31", true},
		{"2026-00-10", false},
		{"2026-13-01", false},
		{"2026-01-00", false},
		{"0001-01-01", true},
		{"0000-01-01", false},
		{"9999-12-31T23:59:59", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := marker.ParseRequestedAt(tc.in)
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				want, err := time.Parse("2006-01-02", tc.in[:10])
				if assert.NoError(t, err) {
					assert.Equal(t, want.Format("2006-01-02"), got.Format("2006-01-02"))
				}
			}
		})
	}
}
