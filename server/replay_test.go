package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// TestReplayRoute: POST /api/gateway/events/replay needs a token, takes an
// empty body or {}, answers the gateway's result as JSON, and 503
// spool_unavailable (with Retry-After) when nothing could be moved.
func TestReplayRoute(t *testing.T) {
	moved := api.ReplayResult{Moved: 2, EventIDs: []string{"ev1", "ev2"}, Unreplayable: 1}
	tests := []struct {
		name   string
		token  string
		body   string
		result api.ReplayResult
		err    error
		status int
		code   string // error code, "" for success
	}{
		{"moved", opsToken, "", moved, nil, http.StatusOK, ""},
		{"empty object", opsToken, "{}", moved, nil, http.StatusOK, ""},
		{"nothing to move", opsToken, "", api.ReplayResult{}, nil, http.StatusOK, ""},
		{"no token", "", "", moved, nil, http.StatusUnauthorized, api.CodeUnauthorized},
		{"unknown field", opsToken, `{"all":true}`, moved, nil, http.StatusBadRequest, api.CodeBadRequest},
		{"spool unavailable", opsToken, "", api.ReplayResult{}, fmt.Errorf("%w: disk full", gateway.ErrSpoolUnavailable),
			http.StatusServiceUnavailable, api.CodeSpoolUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := &Gateway{ReplayEventsFn: func(context.Context) (api.ReplayResult, error) { return tt.result, tt.err }}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/events/replay", tt.token, tt.body)
			if tt.code != "" {
				m := requireError(t, rec, tt.status, tt.code)
				if tt.status == http.StatusServiceUnavailable {
					assert.NotEmpty(t, rec.Header().Get("Retry-After"))
					assert.Contains(t, m["message"], "NOT replayed")
				}
				return
			}
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			m := decodeBody(t, rec)
			assert.Equal(t, true, m["ok"])
			assert.Equal(t, float64(tt.result.Moved), m["moved"])
			assert.Equal(t, float64(tt.result.Unreplayable), m["unreplayable"])
			ids := []any{}
			for _, id := range tt.result.EventIDs {
				ids = append(ids, id)
			}
			assert.Equal(t, ids, m["event_ids"], "event_ids is a list, [] when none")
			assert.Equal(t, []string{"ReplayEvents"}, gw.Calls())
		})
	}
	t.Run("GET is 405", func(t *testing.T) {
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/api/gateway/events/replay", opsToken, "")
		requireError(t, rec, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
		assert.Equal(t, "POST", rec.Header().Get("Allow"))
	})
}
