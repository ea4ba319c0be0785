package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// TestDrainAnnounceSeconds shows that announce_seconds, a number from 0
// to 300, reaches the gateway as the drain's announce, and that anything
// else is a 400 that names the field and reaches nothing.
func TestDrainAnnounceSeconds(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Duration // -1: refused with 400
	}{
		{`{"announce_seconds":5}`, 5 * time.Second},
		{`{"announce_seconds":1.5}`, 1500 * time.Millisecond},
		{`{"announce_seconds":0}`, 0},
		{`{"announce_seconds":300}`, 300 * time.Second},
		{`{"announce_seconds":null}`, 0},
		{`{}`, 0},
		{`{"announce_seconds":-1}`, -1},
		{`{"announce_seconds":300.5}`, -1},
		{`{"announce_seconds":1e9}`, -1},
		{`{"announce_seconds":"5"}`, -1},
		{`{"announce_seconds":"5s"}`, -1},
		{`{"announce_seconds":true}`, -1},
		{`{"action":"cancel","announce_seconds":5}`, -1},
	} {
		t.Run(tc.body, func(t *testing.T) {
			var got *time.Duration
			gw := &Gateway{BeginDrainFn: func(_ context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
				got = &req.Announce
				return gateway.DrainResult{State: fsm.Draining}, nil
			}}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, tc.body)
			if tc.want < 0 {
				m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
				assert.Contains(t, m["message"], "announce_seconds")
				assert.Nil(t, got, "a refused body reaches no drain")
				assert.NotContains(t, gw.Calls(), "CancelDrain")
				return
			}
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.NotNil(t, got)
			assert.Equal(t, tc.want, *got)
		})
	}
}

// TestDrainCancelledDuringAnnounce: a drain whose announce window a
// cancel ended answers 409 drain_cancelled.
func TestDrainCancelledDuringAnnounce(t *testing.T) {
	gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
		return gateway.DrainResult{}, fmt.Errorf("gateway: drain: %w", gateway.ErrDrainCancelled)
	}}
	rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, `{"announce_seconds":5}`)
	m := requireError(t, rec, http.StatusConflict, api.CodeDrainCancelled)
	assert.Equal(t, server.DrainCancelledText, m["message"])
}

// TestReadyzFollowsReady shows that /readyz answers 200 exactly when the
// status says ready, and that quiesce_ready says the same: while a drain
// is announced the gateway is running but not ready.
func TestReadyzFollowsReady(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   api.Status
		want int
		msg  string
	}{
		{"running", api.Status{State: fsm.Running, Ready: true}, http.StatusOK, ""},
		{"announcing", api.Status{State: fsm.Running, Drain: &api.DrainInfo{Status: gateway.DrainStatusAnnouncing, AnnounceUntil: until}},
			http.StatusServiceUnavailable, "announcing a drain: it still accepts turns, but closes its gate at 2030-01-02T03:04:05Z"},
		{"draining", api.Status{State: fsm.Draining, Drain: &api.DrainInfo{Status: "active"}},
			http.StatusServiceUnavailable, "the gateway is draining"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := &Gateway{StatusFn: func() api.Status { return tc.st }}
			h := MustServer(t, gw).Handler()
			rec := do(t, h, http.MethodGet, "/readyz", "", "")
			if tc.want == http.StatusOK {
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			} else {
				m := requireError(t, rec, tc.want, api.CodeNotReady)
				assert.Contains(t, m["message"], tc.msg)
				assert.Equal(t, string(tc.st.State), m["state"])
			}
			metrics := do(t, h, http.MethodGet, "/metrics", "", "").Body.String()
			want := "quiesce_ready 0"
			if tc.st.Ready {
				want = "quiesce_ready 1"
			}
			assert.Contains(t, strings.Split(metrics, "\n"), want)
		})
	}
}
