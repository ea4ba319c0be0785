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
