package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// TestDrainReportsWasDrainingAndExpiresAt shows that a drain's answer says
// whether it replaced an active drain request (was_draining) and when the
// marker expires (expires_at), from gateway.DrainResult.
func TestDrainReportsWasDrainingAndExpiresAt(t *testing.T) {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	gw := &Gateway{}
	gw.BeginDrainFn = func(_ context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
		was := gw.State() == fsm.Draining
		gw.SetState(fsm.Draining)
		return gateway.DrainResult{Drain: api.DrainInfo{RequestID: req.RequestID, ExpiresAt: expires},
			State: fsm.Draining, WasDraining: was}, nil
	}
	h := MustServer(t, gw).Handler()
	for i, want := range []bool{false, true, true} {
		rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, fmt.Sprintf(`{"request_id":"r-%d"}`, i))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, want, m["was_draining"], "drain #%d", i)
		assert.Equal(t, "2030-01-02T03:04:05Z", m["expires_at"], "drain #%d", i)
	}
	t.Run("ExpiresAtFromDrainInfo", func(t *testing.T) {
		gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{Drain: api.DrainInfo{ExpiresAt: expires}, State: fsm.Draining}, nil
		}}
		m := decodeBody(t, do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, ""))
		assert.Equal(t, "2030-01-02T03:04:05Z", m["expires_at"])
	})
	t.Run("UnknownExpiryOmitted", func(t *testing.T) {
		m := decodeBody(t, do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, ""))
		assert.NotContains(t, m, "expires_at")
		assert.Equal(t, false, m["was_draining"])
	})
}

// mismatchError is a gateway.ErrRequestMismatch that knows the active id.
type mismatchError struct{ active string }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("%v (active %s)", gateway.ErrRequestMismatch, e.active)
}
func (e *mismatchError) Unwrap() error           { return gateway.ErrRequestMismatch }
func (e *mismatchError) ActiveRequestID() string { return e.active }

var _ server.ActiveRequestIDer = (*mismatchError)(nil)

// TestCancelMismatchNamesActiveRequest shows that the 409 of a cancel
// naming another request id names the active one when the gateway's
// error carries it, and keeps the plain message when it does not.
func TestCancelMismatchNamesActiveRequest(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		active string
	}{
		{"Carried", fmt.Errorf("gateway: cancel drain: %w", &mismatchError{active: "r-active"}), "r-active"},
		{"CarriedEmpty", &mismatchError{}, ""},
		{"Plain", fmt.Errorf("gateway: cancel drain: %w", gateway.ErrRequestMismatch), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw := &Gateway{CancelDrainFn: func(context.Context, string) (gateway.CancelResult, error) {
				return gateway.CancelResult{}, tt.err
			}}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken,
				`{"action":"cancel","request_id":"r-other"}`)
			m := requireError(t, rec, http.StatusConflict, api.CodeConflict)
			msg := m["message"].(string)
			assert.Contains(t, msg, "nothing was changed")
			if tt.active != "" {
				assert.Contains(t, msg, `"`+tt.active+`"`)
			} else {
				assert.Equal(t, "request_id is not the active drain's; nothing was changed", msg)
			}
			assert.NotContains(t, msg, "gateway:")
		})
	}
}

// TestDrainAndCancelAnswersCarryTheGatewaysResult: every field of the
// drain and cancel answers (docs/API.md) is the gateway's result, each
// from its own field: distinct values throughout, so a field copied from
// a neighbour (refreshed from was_draining, requested_at from expires_at)
// or dropped fails.
func TestDrainAndCancelAnswersCarryTheGatewaysResult(t *testing.T) {
	requested := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, tc := range []struct {
		name string
		res  gateway.DrainResult
		want string
	}{
		{"replaced", gateway.DrainResult{State: fsm.Draining, ActiveAgents: 3, WasDraining: true, Refreshed: false,
			Drain: api.DrainInfo{RequestedAt: requested, SuppressNotification: true, Principal: "alice", RequestID: "maint-42",
				Reason: "disk swap", Persisted: true, ExpiresAt: requested.Add(time.Hour)}},
			`{"ok":true,"action":"drain","requested_at":"2030-01-02T03:04:05.000000006Z","draining":true,
			  "suppress_notification":true,"principal":"alice","request_id":"maint-42","state":"draining","active_agents":3,
			  "was_draining":true,"refreshed":false,"reason":"disk swap","persisted":true,"expires_at":"2030-01-02T04:04:05.000000006Z"}`},
		{"refreshed", gateway.DrainResult{State: fsm.Draining, ActiveAgents: 1, WasDraining: true, Refreshed: true,
			Drain: api.DrainInfo{RequestedAt: requested, Principal: "bob", RequestID: "r-7", Persisted: true,
				ExpiresAt: requested.Add(2 * time.Hour)}},
			`{"ok":true,"action":"drain","requested_at":"2030-01-02T03:04:05.000000006Z","draining":true,
			  "suppress_notification":false,"principal":"bob","request_id":"r-7","state":"draining","active_agents":1,
			  "was_draining":true,"refreshed":true,"reason":"","persisted":true,"expires_at":"2030-01-02T05:04:05.000000006Z"}`},
		{"first", gateway.DrainResult{State: fsm.Draining, ActiveAgents: 0,
			Drain: api.DrainInfo{RequestedAt: requested, Principal: "ops", RequestID: "r-1", Persisted: true,
				ExpiresAt: requested.Add(time.Minute)}},
			`{"ok":true,"action":"drain","requested_at":"2030-01-02T03:04:05.000000006Z","draining":true,
			  "suppress_notification":false,"principal":"ops","request_id":"r-1","state":"draining","active_agents":0,
			  "was_draining":false,"refreshed":false,"reason":"","persisted":true,"expires_at":"2030-01-02T03:05:05.000000006Z"}`},
	} {
		t.Run("drain/"+tc.name, func(t *testing.T) {
			gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
				return tc.res, nil
			}}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, tc.want, rec.Body.String())
		})
	}
	for _, tc := range []struct {
		name string
		res  gateway.CancelResult
		want string
	}{
		{"was draining", gateway.CancelResult{WasDraining: true, State: fsm.Running, ActiveAgents: 2},
			`{"ok":true,"action":"cancel","was_draining":true,"state":"running","active_agents":2}`},
		{"nothing to cancel", gateway.CancelResult{WasDraining: false, State: fsm.Running, ActiveAgents: 1},
			`{"ok":true,"action":"cancel","was_draining":false,"state":"running","active_agents":1}`},
	} {
		t.Run("cancel/"+tc.name, func(t *testing.T) {
			gw := &Gateway{CancelDrainFn: func(context.Context, string) (gateway.CancelResult, error) { return tc.res, nil }}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, tc.want, rec.Body.String())
		})
	}
}
