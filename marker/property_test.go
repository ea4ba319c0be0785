package marker_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// validMarkers are well-formed markers that mutations start from.
var validMarkers = []string{
	`{"action":"drain","requested_at":"2026-11-23T10:00:00Z","principal":"ops","epoch":"` + epochA + `","suppress_notification":true,"request_id":"0123456789abcdef"}`,
	`{"action":"drain","requested_at":"2026-11-23T10:00:00Z","principal":"ops","suppress_notification":true}`,
	`{"action":"drain","requested_at":"2026-11-23T10:00:00","epoch":"` + epochB + `","suppress_notification":false}`,
	`{"epoch":"` + epochA + `"}`,
	`{}`,
}

// markerBytes draws arbitrary bytes, or a valid marker with a few random
// mutations (flip, insert, delete, truncate).
func markerBytes() *rapid.Generator[[]byte] {
	mutated := rapid.Custom(func(t *rapid.T) []byte {
		b := []byte(rapid.SampledFrom(validMarkers).Draw(t, "base"))
		for range rapid.IntRange(0, 4).Draw(t, "mutations") {
			if len(b) == 0 {
				break
			}
			i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				b[i] = rapid.Byte().Draw(t, "byte")
			case 1:
				b = append(b[:i], append([]byte{rapid.Byte().Draw(t, "byte")}, b[i:]...)...)
			case 2:
				b = append(b[:i], b[i+1:]...)
			case 3:
				b = b[:i]
			}
		}
		return b
	})
	return rapid.OneOf(rapid.SliceOf(rapid.Byte()), mutated)
}

// TestPropertyReadArbitraryBytes (a): whatever bytes the marker holds, Read
// does not panic, returns one of the five statuses, and keeps I5.
func TestPropertyReadArbitraryBytes(t *testing.T) {
	home := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		data := markerBytes().Draw(rt, "data")
		require.NoError(rt, os.WriteFile(marker.Path(home), data, 0o600))
		mtime := t0.Add(time.Duration(rapid.Int64Range(-3*3600, 3*3600).Draw(rt, "mtimeSec")) * time.Second)
		require.NoError(rt, os.Chtimes(marker.Path(home), mtime, mtime))
		epoch := rapid.SampledFrom([]string{"", epochA, epochB}).Draw(rt, "epoch")
		maxAge := time.Duration(rapid.IntRange(-1, 120).Draw(rt, "maxAgeMin")) * time.Minute
		st := marker.Read(home, t0, epoch, maxAge)
		checkInvariants(rt, st)
		require.NotEqual(rt, marker.Absent, st.Status, "a file is there")
		require.Equal(rt, st, marker.Read(home, t0, epoch, maxAge), "Read is deterministic")
	})
}

// model is the plain model of the marker for the state-machine test.
type model struct {
	present  bool
	kind     string // "valid", "legacy", "corrupt"
	epoch    string // the marker's epoch
	suppress bool
	at       time.Time // requested_at, or mtime for corrupt markers
	id       string
}

// expect returns the status, legacy flag and suppression the model predicts.
func (m model) expect(now time.Time, current string, maxAge time.Duration) (marker.Status, bool, bool) {
	if !m.present {
		return marker.Absent, false, false
	}
	age := now.Sub(m.at)
	if m.kind == "corrupt" {
		if age > maxAge {
			return marker.Expired, false, false
		}
		return marker.Contentless, false, false
	}
	legacy := m.kind == "legacy" || m.epoch == "" || current == ""
	if !legacy && m.epoch != current {
		return marker.Stale, false, false
	}
	if age > maxAge {
		return marker.Expired, legacy, false
	}
	return marker.Active, legacy, !legacy && m.suppress
}

var corruptBodies = []string{"", "{", "null", "[]", `{"epoch":5}`, `{"suppress_notification":"true"}`, "\xff\xfe", "drain"}

// TestPropertyMarkerStateMachine (b) drives write / clear / clear by id /
// corrupt / legacy / machine restart / respawn / broken proc / clock
// against a plain model and checks I5 and the model's status after every
// step.
func TestPropertyMarkerStateMachine(t *testing.T) {
	base := t.TempDir()
	checks := 0
	const maxAge = time.Hour
	rapid.Check(t, func(rt *rapid.T) {
		checks++
		root := filepath.Join(base, strconv.Itoa(checks))
		home, proc := filepath.Join(root, "home"), filepath.Join(root, "proc")
		require.NoError(rt, os.MkdirAll(home, 0o700))
		defer os.RemoveAll(root)

		boot, start := 1, uint64(100)
		writeProc(rt, proc, fmt.Sprintf("boot-%d", boot), start)
		current := marker.CurrentEpoch(proc)
		require.Equal(rt, "boot-1:100", current)
		now := t0
		var m model
		serial := 0

		rt.Repeat(map[string]func(*rapid.T){
			"": func(rt *rapid.T) {
				st := marker.Read(home, now, current, maxAge)
				checkInvariants(rt, st)
				want, legacy, suppress := m.expect(now, current, maxAge)
				require.Equal(rt, want, st.Status, "status")
				require.Equal(rt, legacy, st.Legacy, "legacy")
				require.Equal(rt, suppress, st.Suppresses(), "suppresses")
				// I5 once more, stated against the model.
				if want == marker.Stale || want == marker.Expired {
					require.False(rt, st.Drains() || st.Suppresses())
				}
				if m.present && (m.kind != "valid" || legacy) {
					require.False(rt, st.Suppresses(), "legacy or corrupt never suppresses")
				}
				if st.Status == marker.Active {
					require.Equal(rt, m.id, st.Request.RequestID)
				}
			},
			"write": func(rt *rapid.T) {
				s := rapid.Bool().Draw(rt, "suppress")
				req, err := marker.Write(home, marker.Request{Epoch: current, RequestedAt: now, SuppressNotification: s})
				require.NoError(rt, err)
				m = model{present: true, kind: "valid", epoch: current, suppress: s, at: now, id: req.RequestID}
			},
			"clear": func(rt *rapid.T) {
				existed, err := marker.Clear(home, "")
				require.NoError(rt, err)
				require.Equal(rt, m.present, existed)
				m.present = false
			},
			"clearMatching": func(rt *rapid.T) {
				if !m.present || m.id == "" {
					rt.Skip("no marker with an id")
				}
				existed, err := marker.Clear(home, m.id)
				require.NoError(rt, err)
				require.True(rt, existed)
				m.present = false
			},
			"clearOther": func(rt *rapid.T) {
				existed, err := marker.Clear(home, "other-"+strconv.Itoa(rapid.IntRange(0, 9).Draw(rt, "n")))
				if m.present {
					require.True(rt, errors.Is(err, marker.ErrRequestMismatch), "got %v", err)
					require.True(rt, existed)
				} else {
					require.NoError(rt, err)
					require.False(rt, existed)
				}
			},
			"corrupt": func(rt *rapid.T) {
				body := rapid.SampledFrom(corruptBodies).Draw(rt, "body")
				require.NoError(rt, homefile.WriteAtomic(marker.Path(home), []byte(body), 0o600))
				require.NoError(rt, os.Chtimes(marker.Path(home), now, now))
				m = model{present: true, kind: "corrupt", at: now}
			},
			"legacy": func(rt *rapid.T) {
				serial++
				s := rapid.Bool().Draw(rt, "suppress")
				ts := now.Format(rapid.SampledFrom([]string{time.RFC3339, "2006-01-02T15:04:05"}).Draw(rt, "layout"))
				id := fmt.Sprintf("legacy-%d", serial)
				body := markerJSON("action", q("drain"), "requested_at", q(ts), "suppress_notification", strconv.FormatBool(s), "request_id", q(id))
				require.NoError(rt, homefile.WriteAtomic(marker.Path(home), []byte(body), 0o600))
				m = model{present: true, kind: "legacy", suppress: s, at: now, id: id}
			},
			"machineRestart": func(rt *rapid.T) {
				if rapid.Bool().Draw(rt, "newBoot") {
					boot++
				} else {
					start++
				}
				writeProc(rt, proc, fmt.Sprintf("boot-%d", boot), start)
				old := current
				current = marker.CurrentEpoch(proc)
				require.NotEmpty(rt, current)
				require.NotEqual(rt, old, current)
			},
			"respawn": func(rt *rapid.T) {
				require.Equal(rt, current, marker.CurrentEpoch(proc), "a respawn keeps the epoch")
			},
			"procUnavailable": func(rt *rapid.T) {
				require.NoError(rt, os.RemoveAll(proc))
				current = marker.CurrentEpoch(proc)
				require.Empty(rt, current)
			},
			"advanceClock": func(rt *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(0, 45*60).Draw(rt, "seconds")) * time.Second)
			},
		})
	})
}
