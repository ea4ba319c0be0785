package marker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// The reason is an extra "reason" field: written when given, read back,
// left out when empty (the marker then looks exactly like upstream's).
func TestReasonRoundTrips(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Principal: "ops", Epoch: epochA, RequestedAt: t0, Reason: "disk swap on node-7"})
	require.NoError(t, err)
	data, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(data, &fields))
	assert.Equal(t, "disk swap on node-7", fields["reason"])
	st := marker.Read(home, t0, epochA, 0)
	require.Equal(t, marker.Active, st.Status)
	assert.Equal(t, req, st.Request)

	_, err = marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0})
	require.NoError(t, err)
	data, err = os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	assert.NotContains(t, string(data), "reason")
}

// A reason of another JSON type makes the marker contentless, as any known
// field of the wrong type does; a hand-written long one is shown as is.
func TestReasonRead(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, `{"action":"drain","epoch":"`+epochA+`","suppress_notification":true,"reason":42}`, t0)
	st := marker.Read(home, t0, epochA, 0)
	assert.Equal(t, marker.Contentless, st.Status)
	assert.False(t, st.Suppresses())

	long := strings.Repeat("x", marker.MaxReasonLen+10)
	writeRaw(t, home, `{"action":"drain","epoch":"`+epochA+`","reason":"`+long+`"}`, t0)
	st = marker.Read(home, t0, epochA, 0)
	assert.Equal(t, marker.Active, st.Status)
	assert.Equal(t, long, st.Request.Reason)
}

// CheckReason takes at most 200 characters of printable text; Write
// refuses anything else with ErrInvalidRequest and leaves the marker alone.
func TestCheckReason(t *testing.T) {
	cases := []struct {
		name   string
		reason string
		ok     bool
	}{
		{"empty", "", true},
		{"plain", "kernel upgrade, back at 10:30 (ticket OPS-42)", true},
		{"200 characters", strings.Repeat("ü", marker.MaxReasonLen), true},
		{"non-latin", "обновление ядра 🙂", true},
		{"201 characters", strings.Repeat("ü", marker.MaxReasonLen+1), false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"NUL", "a\x00b", false},
		{"escape sequence", "\x1b[2J", false},
		{"DEL", "a\x7fb", false},
		{"invalid UTF-8", "a\xffb", false},
		{"line separator", "a\u2028b", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := marker.CheckReason(tc.reason)
			home := t.TempDir()
			_, werr := marker.Write(home, marker.Request{Epoch: epochA, Reason: tc.reason})
			if tc.ok {
				require.NoError(t, err)
				require.NoError(t, werr)
				return
			}
			require.ErrorIs(t, err, marker.ErrInvalidRequest)
			assert.Contains(t, err.Error(), "reason")
			require.ErrorIs(t, werr, marker.ErrInvalidRequest)
			_, serr := os.Lstat(marker.Path(home))
			require.ErrorIs(t, serr, os.ErrNotExist, "nothing written")
		})
	}
}

// Edit hands the callback the marker as it is, and writes what it returns.
func TestEditSeesTheMarker(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Principal: "ops", Epoch: epochA, RequestedAt: t0, RequestID: "r1", Reason: "why"})
	require.NoError(t, err)
	later := t0.Add(time.Minute)
	prev, written, err := marker.Edit(home, later, epochA, 0, func(prev marker.State) (marker.Request, error) {
		r := prev.Request
		r.RequestedAt = later
		return r, nil
	})
	require.NoError(t, err)
	assert.Equal(t, marker.Active, prev.Status)
	assert.Equal(t, "r1", prev.Request.RequestID)
	assert.Equal(t, later, written.RequestedAt)
	assert.Equal(t, "why", marker.Read(home, later, epochA, 0).Request.Reason)

	boom := errors.New("boom")
	_, _, err = marker.Edit(home, later, epochA, 0, func(marker.State) (marker.Request, error) { return marker.Request{}, boom })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, later, marker.Read(home, later, epochA, 0).Request.RequestedAt, "an edit that fails writes nothing")
}

// Edit holds the marker's lock from its read to its write: a Write that
// starts meanwhile lands after it, so a refresh never keeps the fields of
// a request that was already replaced.
func TestEditHoldsTheLock(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochA, RequestID: "old"})
	require.NoError(t, err)
	done := make(chan error, 1)
	_, _, err = marker.Edit(home, time.Now(), epochA, 0, func(prev marker.State) (marker.Request, error) {
		go func() {
			_, err := marker.Write(home, marker.Request{Epoch: epochA, RequestID: "concurrent"})
			done <- err
		}()
		select {
		case err := <-done:
			assert.Fail(t, fmt.Sprintf("a Write got through while Edit held the lock (err %v)", err))
		case <-time.After(100 * time.Millisecond):
		}
		r := prev.Request
		r.RequestID = "edited"
		return r, nil
	})
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		require.Fail(t, "the concurrent Write never finished")
	}
	assert.Equal(t, "concurrent", marker.Read(home, time.Now(), epochA, 0).Request.RequestID, "the Write came second")
}
