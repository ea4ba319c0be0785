package server

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeaderValueIsGet checks headerValue against Header.Get for the
// canonical keys it is used with: present, absent, empty, repeated, and
// set by a client in another case (net/http canonicalizes it on parsing).
func TestHeaderValueIsGet(t *testing.T) {
	for _, raw := range []string{
		"Authorization: Bearer x\r\nAccept: text/event-stream\r\n",
		"authorization: Bearer y\r\naccept: a\r\nACCEPT: b\r\n",
		"Authorization:\r\n",
		"X-Other: 1\r\n",
	} {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\n" + raw + "\r\n")))
		require.NoError(t, err)
		for _, key := range []string{"Authorization", "Accept"} {
			got, want := headerValue(req.Header, key), req.Header.Get(key)
			assert.Equalf(t, want, got, "%q: headerValue(%s) = %q, Get = %q", raw, key, got, want)
		}
	}
}

// TestUncleanPath checks uncleanPath against its definition, segment by
// segment, on paths with and without dots and empty segments.
func TestUncleanPath(t *testing.T) {
	reference := func(p string) bool {
		for i, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." || (seg == "" && i > 0 && i < len(strings.Split(p, "/"))-1) {
				return true
			}
		}
		return false
	}
	for _, p := range []string{
		"/", "", "/healthz", "/v1/sessions/a/messages", "/v1/sessions/a.b/messages", "/v1/sessions/.../messages",
		"/v1/sessions/./messages", "/v1/sessions/../messages", "/v1//sessions", "//", "/.", "/..", "/a/.", "/a/..",
		"/.a", "/a.", "/static/app.js", "/a//", "/a/./b", ".", "..", "./a", "a/..",
	} {
		got, want := uncleanPath(p), reference(p)
		assert.Equalf(t, want, got, "uncleanPath(%q) = %v, want %v", p, got, want)
	}
}
