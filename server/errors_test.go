package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/server"
)

// TestEventSpoolUnavailableIs503NotAccepted shows that an event the
// gateway could not spool is a 503 "spool_unavailable" with Retry-After,
// whose message says the event was not accepted and to retry, and which
// does not echo the gateway's error.
func TestEventSpoolUnavailableIs503NotAccepted(t *testing.T) {
	gw := &Gateway{EventFn: func(context.Context, string, string) (api.EventReceipt, error) {
		return api.EventReceipt{}, fmt.Errorf("%w: write /home/q/events.spool.jsonl: no space left on device",
			gateway.ErrSpoolUnavailable)
	}}
	s, err := server.New(server.Config{Gateway: gw, RetryAfter: 9 * time.Second,
		Tokens: server.NewTokens(map[string]string{"ops": opsToken})})
	require.NoError(t, err)
	rec := do(t, s.Handler(), http.MethodPost, "/api/gateway/events", opsToken, `{"session":"a","text":"done"}`)
	m := requireError(t, rec, http.StatusServiceUnavailable, api.CodeSpoolUnavailable)
	assert.Equal(t, "9", rec.Header().Get("Retry-After"))
	assert.Equal(t, server.SpoolUnavailableText, m["message"])
	assert.Contains(t, m["message"], "NOT accepted")
	assert.Contains(t, m["message"], "retry")
	assert.NotContains(t, rec.Body.String(), "/home/q", "the gateway's error is not echoed")
	assert.NotContains(t, rec.Body.String(), "no space")
}

// TestDrainMarkerUnusableIs409NamingPath shows that a drain or cancel the
// gateway refuses because the marker path is not a usable file is a 409
// "marker_unusable" whose message names the path and what is there, says
// what to do, and carries none of the error chain's package prefixes.
func TestDrainMarkerUnusableIs409NamingPath(t *testing.T) {
	const path = "/home/q/.quiesce/drain.json"
	// The gateway's error, as it wraps the marker package's.
	markerErr := fmt.Errorf("%w: %s is a FIFO", marker.ErrUnusable, path)
	unusable := fmt.Errorf("gateway: drain: %w: %w", gateway.ErrMarkerUnusable, markerErr)
	gw := &Gateway{
		BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, unusable
		},
		CancelDrainFn: func(context.Context, string) (gateway.CancelResult, error) {
			return gateway.CancelResult{}, unusable
		},
	}
	for _, body := range []string{`{"action":"drain"}`, `{"action":"cancel"}`} {
		t.Run(body, func(t *testing.T) {
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, body)
			m := requireError(t, rec, http.StatusConflict, api.CodeMarkerUnusable)
			msg := m["message"].(string)
			assert.Contains(t, msg, path+" is a FIFO", "names the path and what is there")
			assert.Contains(t, msg, "Nothing was changed")
			assert.Contains(t, msg, "move it aside", "says what to do")
			assert.NotContains(t, msg, "gateway:")
			assert.NotContains(t, msg, "marker:")
			assert.Empty(t, rec.Header().Get("Retry-After"))
		})
	}
	t.Run("ThroughHomefile", func(t *testing.T) {
		inner := fmt.Errorf("write %s: %w (a directory)", path, errors.New("not a regular file"))
		err := fmt.Errorf("gateway: drain: %w: %w", gateway.ErrMarkerUnusable, fmt.Errorf("marker: %w", inner))
		gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, err
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
		m := requireError(t, rec, http.StatusConflict, api.CodeMarkerUnusable)
		assert.Contains(t, m["message"], path)
		assert.Contains(t, m["message"], "a directory")
		assert.NotContains(t, m["message"], "marker:")
	})
	t.Run("RealGateway", func(t *testing.T) {
		// The detail is read from the error text the gateway and marker
		// packages really produce: a FIFO at the marker path.
		home := t.TempDir()
		gw, err := gateway.New(gateway.Config{Home: home, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() {
			// Stop the background writers before the temp home goes away.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := gw.Shutdown(ctx, true)
			assert.NoError(t, err)
			assert.NoError(t, gw.Close())
		})
		require.NoError(t, gw.Start(context.Background()))
		require.NoError(t, syscall.Mkfifo(marker.Path(home), 0o600))
		h := MustServer(t, gw).Handler()
		for _, body := range []string{``, `{"action":"cancel"}`, `{"action":"cancel","request_id":"r"}`} {
			rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, body)
			m := requireError(t, rec, http.StatusConflict, api.CodeMarkerUnusable)
			assert.Contains(t, m["message"], marker.Path(home)+" is a FIFO", "body %q", body)
			assert.NotContains(t, m["message"], "gateway:")
			assert.NotContains(t, m["message"], "marker:")
		}
	})
	t.Run("InternalDetailNotEchoed", func(t *testing.T) {
		inner := fmt.Errorf("marker: lock: %w", errors.New("input/output error at /secret"))
		err := fmt.Errorf("gateway: drain: %w: %w", gateway.ErrMarkerUnusable, inner)
		gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, err
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
		m := requireError(t, rec, http.StatusConflict, api.CodeMarkerUnusable)
		assert.NotContains(t, m["message"], "secret")
		assert.NotContains(t, m["message"], "marker:")
	})
	t.Run("NoDetail", func(t *testing.T) {
		gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, fmt.Errorf("gateway: drain: %w", gateway.ErrMarkerUnusable)
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
		m := requireError(t, rec, http.StatusConflict, api.CodeMarkerUnusable)
		assert.NotContains(t, m["message"], "gateway:")
	})
}

// TestDrainWhileShuttingDownIs409 shows that a drain or a cancel after the
// shutdown began is a 409 "shutting_down" saying nothing was changed.
func TestDrainWhileShuttingDownIs409(t *testing.T) {
	gw := &Gateway{
		BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, fmt.Errorf("gateway: drain: %w", gateway.ErrShuttingDown)
		},
		CancelDrainFn: func(context.Context, string) (gateway.CancelResult, error) {
			return gateway.CancelResult{}, fmt.Errorf("gateway: cancel drain: %w", gateway.ErrShuttingDown)
		},
	}
	for _, body := range []string{``, `{"action":"drain","request_id":"r"}`, `{"action":"cancel"}`} {
		t.Run(fmt.Sprintf("body=%q", body), func(t *testing.T) {
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, body)
			m := requireError(t, rec, http.StatusConflict, api.CodeShuttingDown)
			assert.Equal(t, server.ShuttingDownText, m["message"])
			assert.Contains(t, m["message"], "shutdown wins")
			assert.Contains(t, m["message"], "nothing was changed")
		})
	}
}
