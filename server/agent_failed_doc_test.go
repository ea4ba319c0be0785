package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
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
	agentErr := func(cause error) error { return fmt.Errorf("%w: %w", gateway.ErrAgent, cause) }
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"ExecExit", agentErr(errors.New("exit status 3")), "the agent failed to answer this turn"},
		{"UpstreamStatus", agentErr(&agent.UpstreamError{URL: "http://x/", Status: 500, Reason: "boom"}),
			"the agent failed to answer this turn: the upstream agent answered 500 Internal Server Error"},
		{"UpstreamTimeout", agentErr(&agent.UpstreamError{URL: "http://x/", Reason: "timed out after 30s"}),
			"the agent failed to answer this turn: the upstream agent timed out after 30s"},
		{"UpstreamBadReply", agentErr(&agent.UpstreamError{URL: "http://x/", Status: 200, Reason: "bad JSON reply: EOF"}),
			"the agent failed to answer this turn: the upstream agent answered 200 OK with a body that is not a reply"},
		{"UpstreamNoAnswer", agentErr(&agent.UpstreamError{URL: "http://x/", Reason: "no answer: connection refused"}),
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
