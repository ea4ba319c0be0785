package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/quiesce-dev/quiesce/server"
)

// a single-dot segment where a route has a variable ({id} = ".") is
// a 404 and never reaches the gateway.
func TestSingleDotSessionSegmentIs404(t *testing.T) {
	for _, path := range []string{"/v1/sessions/./messages", "/v1/sessions/%2e/messages", "/v1/sessions/%2E/messages"} {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, path, opsToken, `{"text":"hi"}`)
		requireError(t, rec, http.StatusNotFound, server.CodeNotFound)
		assert.Empty(t, gw.Calls(), path)
	}
}
