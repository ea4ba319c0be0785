package server

import (
	"regexp"
	"testing"
)

// TestIsMessagePathMatchesTheTemplate checks isMessagePath against the
// regexp mux builds for MessagePathTemplate.
func TestIsMessagePathMatchesTheTemplate(t *testing.T) {
	template := regexp.MustCompile(`^/v1/sessions/[^/]+/messages$`)
	paths := []string{
		"/v1/sessions/a/messages", "/v1/sessions//messages", "/v1/sessions/a/b/messages",
		"/v1/sessions/messages", "/v1/sessions/a/messages/", "/v1/sessions/a/messagesx",
		"/v1/sessions/é %/messages", "/v1/sessions/a", "v1/sessions/a/messages", "/v1/sessions/",
		"/v1/sessions/messages/messages", "/V1/sessions/a/messages", "",
	}
	for _, p := range paths {
		if got, want := isMessagePath(p), template.MatchString(p); got != want {
			t.Errorf("isMessagePath(%q) = %v, the template says %v", p, got, want)
		}
	}
	if got := sessionOfPath("/v1/sessions/abc/messages"); got != "abc" {
		t.Errorf("sessionOfPath = %q, want abc", got)
	}
}
