package server

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// TestAgentFailedMessagesDocumented maps each kind of agent failure to the
// 502 answer the server sends, and requires docs/API.md to show that exact
// message: the docs say what a client really gets, and a 200 whose body is
// not a reply never reads like success.
func TestAgentFailedMessagesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"ExecExit", &gateway.AgentError{Err: errors.New("exit status 3")}, "the agent failed to answer this turn"},
		{"UpstreamStatus", &gateway.AgentError{Upstream: true, Status: 500, Err: errors.New("boom")},
			"the agent failed to answer this turn: the upstream agent answered 500 Internal Server Error"},
		{"UpstreamTimeout", &gateway.AgentError{Upstream: true, Timeout: 30 * time.Second, Err: errors.New("timed out after 30s")},
			"the agent failed to answer this turn: the upstream agent timed out after 30s"},
		{"UpstreamBadReply", &gateway.AgentError{Upstream: true, Status: 200, Err: errors.New("bad JSON reply: EOF")},
			"the agent failed to answer this turn: the upstream agent answered 200 OK with a body that is not a reply"},
		{"UpstreamNoAnswer", &gateway.AgentError{Upstream: true, Err: errors.New("no answer: connection refused")},
			"the agent failed to answer this turn: the upstream agent did not answer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := errorFor(tt.err)
			assert.Equal(t, 502, e.Status)
			assert.Equal(t, api.CodeAgentFailed, e.Code)
			assert.Equal(t, tt.want, e.Message)
			assert.True(t, strings.Contains(string(doc), "`"+e.Message+"`"), "docs/API.md does not show the message %q", e.Message)
		})
	}
}
