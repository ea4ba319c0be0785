package marker

import "time"

// parseTime parses requested_at. It accepts what RFC 3339 allows and what
// Python's datetime.fromisoformat accepts from a Python writer (every
// isoformat() form):
//
//	date        YYYY-MM-DD (alone: midnight UTC)
//	separator   "T", "t" or a space
//	time        HH, HH:MM, HH:MM:SS, or HH:MM:SS followed by "." or ","
//	            and one or more digits (kept to the nanosecond, the rest
//	            truncated)
//	zone        none (naive: UTC), "Z" or "z", or an offset from UTC of
//	            less than 24 hours: ±HH, ±HHMM, ±HH:MM, ±HHMMSS, ±HH:MM:SS,
//	            the last two optionally with a fraction as above
//
// The date must exist (no 2026-02-30), hours are 00–23, minutes and seconds
// 00–59 (no leap second, as in Python). Anything else, leading or trailing
// white space included, is refused (ok false) and the caller falls back to
// the file's modification time. The result is in UTC.
func parseTime(s string) (t time.Time, ok bool) {
	year, ok1 := num(s, 0, 4)
	month, ok2 := num(s, 5, 2)
	day, ok3 := num(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	rest := s[10:]
	var hour, minute, sec, nsec int
	var offset time.Duration
	if rest != "" {
		if c := rest[0]; c != 'T' && c != 't' && c != ' ' {
			return time.Time{}, false
		}
		rest = rest[1:]
		var ok bool
		if hour, minute, sec, nsec, rest, ok = parseClock(rest, true); !ok || hour > 23 {
			return time.Time{}, false
		}
		if offset, ok = parseZone(rest); !ok {
			return time.Time{}, false
		}
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-offset), true
}

// parseClock parses HH[:MM[:SS[(.|,)F+]]] at the start of s (with colons
// when colons is true, else HH[MM[SS[(.|,)F+]]]) and returns the rest of s.
// Minutes and seconds are checked to be below 60; hours are not checked.
func parseClock(s string, colons bool) (hour, minute, sec, nsec int, rest string, ok bool) {
	hour, ok = num(s, 0, 2)
	if !ok {
		return 0, 0, 0, 0, "", false
	}
	s = s[2:]
	for i, dst := range []*int{&minute, &sec} {
		if colons {
			if s == "" || s[0] != ':' {
				return hour, minute, sec, 0, s, true
			}
			s = s[1:]
		} else if s == "" || !isDigit(rune(s[0])) {
			return hour, minute, sec, 0, s, true
		}
		v, ok := num(s, 0, 2)
		if !ok || v > 59 {
			return 0, 0, 0, 0, "", false
		}
		*dst, s = v, s[2:]
		if i == 1 && s != "" && (s[0] == '.' || s[0] == ',') {
			s = s[1:]
			n := 0
			scale := int(time.Second)
			for n < len(s) && isDigit(rune(s[n])) {
				if scale > 1 {
					scale /= 10
					nsec += int(s[n]-'0') * scale
				}
				n++
			}
			if n == 0 {
				return 0, 0, 0, 0, "", false
			}
			s = s[n:]
		}
	}
	return hour, minute, sec, nsec, s, true
}

// parseZone parses the zone of parseTime (all of s) and returns the offset
// from UTC in nanoseconds.
func parseZone(s string) (offset time.Duration, ok bool) {
	switch {
	case s == "":
		return 0, true
	case s == "Z" || s == "z":
		return 0, true
	case s[0] != '+' && s[0] != '-':
		return 0, false
	}
	colons := len(s) > 3 && s[3] == ':'
	h, m, sec, nsec, rest, ok := parseClock(s[1:], colons)
	if !ok || rest != "" || h > 23 {
		return 0, false
	}
	offset = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(nsec)
	if s[0] == '-' {
		offset = -offset
	}
	return offset, true
}

// num parses the n ASCII digits at s[i:i+n].
func num(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// isDigit reports whether r is an ASCII digit.
func isDigit(r rune) bool { return '0' <= r && r <= '9' }

// daysIn returns the number of days in month of year (proleptic Gregorian).
func daysIn(year, month int) int {
	if month == 2 {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	if month == 4 || month == 6 || month == 9 || month == 11 {
		return 30
	}
	return 31
}
