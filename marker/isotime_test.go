package marker_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestParseRequestedAtPythonForms: every form a Python writer produces
// (datetime.isoformat with each timespec, naive or not, "T" or space, any
// offset), plus RFC 3339's, parses to the right instant, directly and as
// a marker's requested_at.
func TestParseRequestedAtPythonForms(t *testing.T) {
	utc := func(h, m, s, ns int) time.Time { return time.Date(2026, 11, 23, h, m, s, ns, time.UTC) }
	cases := []struct {
		in   string
		want time.Time
	}{
		// datetime.now(timezone.utc).isoformat()
		{"2026-11-23T10:00:00.123456+00:00", utc(10, 0, 0, 123456000)},
		// isoformat(timespec=...) with a UTC offset
		{"2026-11-23T10+00:00", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00+00:00", utc(10, 0, 0, 0)},
		{"2026-11-23T08:00+00:00", utc(8, 0, 0, 0)},
		{"2026-11-23T10:00:00+00:00", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00:00.123+00:00", utc(10, 0, 0, 123000000)},
		// naive (datetime.now().isoformat(), utcnow()): taken as UTC
		{"2026-11-23T10", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00:00", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00:00.123", utc(10, 0, 0, 123000000)},
		{"2026-11-23T10:00:00.123456", utc(10, 0, 0, 123456000)},
		// a space instead of "T" (str(datetime), isoformat(" "))
		{"2026-11-23 10:00:00.123456+00:00", utc(10, 0, 0, 123456000)},
		{"2026-11-23 10:00", utc(10, 0, 0, 0)},
		{"2026-11-23 10", utc(10, 0, 0, 0)},
		// Z (Python 3.11+, RFC 3339), lowercase t and z (RFC 3339)
		{"2026-11-23T10:00:00Z", utc(10, 0, 0, 0)},
		{"2026-11-23T10:00Z", utc(10, 0, 0, 0)},
		{"2026-11-23T10Z", utc(10, 0, 0, 0)},
		{"2026-11-23t10:00:00.5z", utc(10, 0, 0, 500000000)},
		// fractions of 1 to 9 digits, "." or ","; beyond 9 truncated
		{"2026-11-23T10:00:00.1Z", utc(10, 0, 0, 100000000)},
		{"2026-11-23T10:00:00.12Z", utc(10, 0, 0, 120000000)},
		{"2026-11-23T10:00:00.1234Z", utc(10, 0, 0, 123400000)},
		{"2026-11-23T10:00:00.12345Z", utc(10, 0, 0, 123450000)},
		{"2026-11-23T10:00:00.1234567Z", utc(10, 0, 0, 123456700)},
		{"2026-11-23T10:00:00.12345678Z", utc(10, 0, 0, 123456780)},
		{"2026-11-23T10:00:00.123456789Z", utc(10, 0, 0, 123456789)},
		{"2026-11-23T10:00:00.123456789999Z", utc(10, 0, 0, 123456789)},
		{"2026-11-23T10:00:00,5+00:00", utc(10, 0, 0, 500000000)},
		// offsets: ±HH:MM, ±HHMM, ±HH, ±HH:MM:SS(.ffffff), ±HHMMSS
		{"2026-11-23T11:00:00+01:00", utc(10, 0, 0, 0)},
		{"2026-11-23T05:00:00-05:00", utc(10, 0, 0, 0)},
		{"2026-11-23T15:30+0530", utc(10, 0, 0, 0)},
		{"2026-11-23T02:00:00-0800", utc(10, 0, 0, 0)},
		{"2026-11-23T12+02", utc(10, 0, 0, 0)},
		{"2026-11-23T15:30:15+05:30:15", utc(10, 0, 0, 0)},
		{"2026-11-23T15:30:15+053015", utc(10, 0, 0, 0)},
		{"2026-11-23T15:30:15+05:30:15.000005", utc(9, 59, 59, 999995000)},
		{"2026-11-23T10:00:00-00:00", utc(10, 0, 0, 0)},
		{"2026-11-24T09:59:00+23:59", utc(10, 0, 0, 0)},
		{"2026-11-23T00:30:00+01:00", time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC)},
		// date only (date.isoformat()): midnight UTC
		{"2026-11-23", utc(0, 0, 0, 0)},
		{"2024-02-29", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		// extremes
		{"0001-01-01T00:00:01", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}, // 00:00:00 is the zero time: missing
		{"9999-12-31T23:59:59.999999", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := marker.ParseRequestedAt(c.in)
			require.True(t, ok, "parses")
			require.Equal(t, c.want, got)
			require.Equal(t, time.UTC, got.Location())

			home := t.TempDir()
			writeRaw(t, home, markerJSON("epoch", q(epochA), "requested_at", q(c.in)), t0.Add(-time.Minute))
			st := marker.Read(home, c.want.Add(time.Minute), epochA, time.Hour)
			require.Equal(t, marker.Active, st.Status)
			require.Equal(t, c.want, st.Request.RequestedAt)
			require.False(t, st.AgeFromMtime, "aged by requested_at, not the mtime")
			require.Equal(t, time.Minute, st.Age)
		})
	}
}

// TestParseRequestedAtRejectsGarbage: what is neither RFC 3339 nor a
// Python isoformat form is refused (so the age falls back to the mtime).
func TestParseRequestedAtRejectsGarbage(t *testing.T) {
	for _, in := range []string{
		"", "yesterday", "last tuesday", "2026", "2026-11", "2026-11-2", "2026-1-23", "26-11-23", "2026/11/23",
		"2026-11-23T", "2026-11-23Z", "2026-11-23T1", "2026-11-23T1:00:00", "2026-11-23T10:0", "2026-11-23T10:00:0",
		"2026-11-23T10:00:00.", "2026-11-23T10:00:00.Z", "2026-11-23T10:00.5", "2026-11-23T10:00:00..5",
		"2026-11-23T10:00:00.5.5", "2026-11-23T10:00:00.1e3", "2026-11-23T10:00:00.-5",
		"2026-11-23T24:00:00", "2026-11-23T23:60:00", "2026-11-23T23:59:60", "2026-11-23T10:-1:00",
		"2026-02-29", "2026-04-31", "2026-13-01", "2026-00-01", "2026-11-00", "0000-01-01",
		"2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00+23:60", "2026-11-23T10:00:00+5:00",
		"2026-11-23T10:00:00+05:0", "2026-11-23T10:00:00+05:3000", "2026-11-23T10:00:00+0530:00",
		"2026-11-23T10:00:00+01:00.5", "2026-11-23T10:00:00+", "2026-11-23T10:00:00-",
		"2026-11-23T10:00:00ZZ", "2026-11-23T10:00:00+01:00Z", "2026-11-23T10:00:00UTC", "2026-11-23T10:00:00 UTC",
		"2026-11-23T10:00:00 +01:00", " 2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z ", "2026-11-23T10:00:00Z\n",
		"2026-11-23x10:00", "2026-11-23_10:00:00", "2026-11-23\u00a010:00:00", "2026-11-23+05:00",
		"2026-11-23T100000", "20261123T100000", "20261123", "2026-W47-1", "2026-327",
		"2026-11-23T\u0661\u0660:00:00", "\u0662\u0660\u0662\u0666-11-23",
	} {
		_, ok := marker.ParseRequestedAt(in)
		require.False(t, ok, "%q must not parse", in)
	}
}

// quiesceDiffersFromPython lists the inputs of the Python golden file on
// which quiesce deliberately differs from datetime.fromisoformat: RFC 3339
// allows a lowercase "z"; the rest are forms Python 3.11 accepts but no
// Python isoformat() produces (any separator character, ISO 8601 basic and
// week dates, a fraction after minutes or with no digits, a space before the
// offset, a fraction after an offset's minutes), refused as garbage.
var quiesceDiffersFromPython = map[string]bool{
	"2026-11-23T10:00:00z":        true,
	"2026-11-23_10:00:00":         true,
	"2026-11-23x10:00":            true,
	"2026-11-23+05:00":            true,
	"2026-11-23-05:00":            true,
	"2026-11-23\u00a010:00:00":    true,
	"2026-11-23\u200b10:00:00":    true,
	"2026-11-23\u00e910:00:00":    true,
	"2026-11-23T10:00:00.Z":       true,
	"2026-11-23T10:00.5":          true,
	"2026-11-23T10:00:00 +01:00":  true,
	"2026-11-23T100000":           true,
	"2026-11-23T1000":             true,
	"20261123T100000":             true,
	"20261123":                    true,
	"2026-W47-1":                  true,
	"2026-11-23T10:00:00+01:00.5": true,
	"2026-11-23T10:00:00+0100.5":  true,
}

// TestParseRequestedAtAgreesWithPython checks parseTime against what
// Python 3.11's datetime.fromisoformat made of each input of
// testdata/python_fromisoformat.tsv (generated by the script next to it):
// the same instant (to Python's microsecond) or both refusing, except for
// the deliberate differences above.
func TestParseRequestedAtAgreesWithPython(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "python_fromisoformat.tsv"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines, accepted := 0, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		in, want, found := strings.Cut(line, "\t")
		require.True(t, found, "malformed line %q", line)
		lines++
		got := "error"
		if ts, ok := marker.ParseRequestedAt(in); ok {
			got = ts.Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
		}
		if quiesceDiffersFromPython[in] {
			require.NotEqual(t, want, got, "%q: listed as a difference but agrees; drop it from the list", in)
			continue
		}
		require.Equal(t, want, got, "%q", in)
		if got != "error" {
			accepted++
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, lines, 100, "golden file read")
	require.Greater(t, accepted, 80, "most golden inputs are Python writer forms")
}

// TestNoSecondsTimestampExpires is the upstream regression: a drain written
// two hours ago by a Python writer with isoformat(timespec="minutes") is
// expired under a 1h max age, although the file itself was touched a
// minute ago.
func TestNoSecondsTimestampExpires(t *testing.T) {
	home := t.TempDir()
	requested := t0.Add(-2 * time.Hour) // 08:30 UTC
	writeRaw(t, home, markerJSON("action", q("drain"), "epoch", q(epochA),
		"requested_at", q(requested.Format("2006-01-02T15:04")+"+00:00")), t0.Add(-time.Minute))
	st := marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Expired, st.Status, "not active: aged by requested_at")
	require.False(t, st.AgeFromMtime)
	require.Equal(t, 2*time.Hour, st.Age)
	require.Equal(t, requested, st.Request.RequestedAt)
	require.False(t, st.Drains())
}

// FuzzParseRequestedAt: parseTime never panics, returns UTC, and what it
// accepts round-trips through RFC 3339.
func FuzzParseRequestedAt(f *testing.F) {
	for _, s := range []string{"2026-11-23T10:00:00.123456+00:00", "2026-11-23T10:00+0530", "2026-11-23",
		"2026-11-23 10", "2026-11-23T10:00:00.123456789999z", "2026-11-23T10:00:00+05:30:15.5", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, ok := marker.ParseRequestedAt(s)
		if !ok {
			require.True(t, ts.IsZero())
			return
		}
		require.Equal(t, time.UTC, ts.Location())
		back, ok := marker.ParseRequestedAt(ts.Format(time.RFC3339Nano))
		if ts.Year() >= 1 && ts.Year() <= 9999 {
			require.True(t, ok, "%q -> %v round-trips", s, ts)
			require.True(t, ts.Equal(back))
		}
	})
}
