package server_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server/page"
)

// TestPageShowsState shows that GET /, without a token, renders the state
// (with its colour class), the turns in flight and the oldest turn's age,
// and marks the state in the lifecycle diagram.
func TestPageShowsState(t *testing.T) {
	for _, tt := range []struct {
		state    fsm.State
		inFlight int
		oldest   float64
		want     []string
	}{
		{fsm.Running, 0, 0, []string{">0</dd>", "none in flight", "accepting new turns"}},
		{fsm.Draining, 3, 75.4, []string{">3</dd>", "1 min 15 s", "not starting new turns"}},
		{fsm.ShuttingDown, 1, 2.25, []string{">1</dd>", "2.2 s", "shutting down"}},
		{fsm.Stopped, 0, 0, []string{">0</dd>", "none in flight"}},
	} {
		t.Run(string(tt.state), func(t *testing.T) {
			gw := &Gateway{StatusFn: func() api.Status {
				return api.Status{State: tt.state, ActiveAgents: tt.inFlight, OldestTurnSeconds: tt.oldest}
			}}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/", "", "")
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
			body := rec.Body.String()
			assert.Contains(t, body, `<span id="state" class="badge state-`+string(tt.state)+`" data-state="`+string(tt.state)+`">`+string(tt.state)+`</span>`)
			assert.Contains(t, body, `<title>quiesce: `+string(tt.state)+`</title>`)
			for _, w := range tt.want {
				assert.Contains(t, body, w)
			}
			current := regexp.MustCompile(`<g class="state current" data-state="([a-z_]+)"`).FindAllStringSubmatch(body, -1)
			require.Len(t, current, 1, "one state is marked current in the diagram")
			assert.Equal(t, string(tt.state), current[0][1])
		})
	}
}

// TestPageShowsSinceAndFigures shows the rest of what the page renders
// without a token: how long the state has lasted ("draining for 3m12s"),
// the spooled events, the pending webhook messages, the version and a
// link to /metrics.
func TestPageShowsSinceAndFigures(t *testing.T) {
	since := time.Now().Add(-(3*time.Minute + 12*time.Second + 300*time.Millisecond))
	gw := &Gateway{StatusFn: func() api.Status {
		return api.Status{State: fsm.Draining, StateSince: since, SpooledEvents: 4, WebhookPending: 17, Version: "v9.8.7"}
	}}
	body := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/", "", "").Body.String()
	assert.Regexp(t, `<span id="state-since" data-since="[^"]+">draining for 3m1[23]s</span>`, body)
	assert.Contains(t, body, `<dd id="spooled">4</dd>`)
	assert.Contains(t, body, "version v9.8.7")
	assert.Contains(t, body, `<a href="/metrics">`)
	assert.Contains(t, body, `<dd id="webhook-pending">17</dd>`)

	unknown := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/", "", "").Body.String()
	assert.Contains(t, unknown, `<span id="state-since" data-since=""></span>`, "no since when the status does not say")
}

// TestPageControlsAboveTheFold shows the order of the page: the summary,
// then the controls, then the lists, the diagram last.
func TestPageControlsAboveTheFold(t *testing.T) {
	body := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/", "", "").Body.String()
	var at []int
	for _, id := range []string{`id="summary"`, `id="control"`, `id="turns-panel"`, `id="history-panel"`, `id="diagram"`} {
		i := strings.Index(body, id)
		require.GreaterOrEqualf(t, i, 0, "%s is in the page", id)
		at = append(at, i)
	}
	assert.IsIncreasing(t, at)
}

// TestPageHeaders shows the page's security and caching headers, also on
// HEAD (which answers the headers without a body).
func TestPageHeaders(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	get := do(t, h, http.MethodGet, "/", "", "")
	head := do(t, h, http.MethodHead, "/", "", "")
	require.Equal(t, http.StatusOK, get.Code)
	require.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.String(), "HEAD has no body")
	for name, rec := range map[string]interface{ Header() http.Header }{"GET": get, "HEAD": head} {
		hd := rec.Header()
		csp := hd.Get("Content-Security-Policy")
		assert.Equalf(t, page.CSP, csp, "%s CSP", name)
		assert.Containsf(t, csp, "script-src 'self'", "%s CSP", name)
		assert.NotContainsf(t, csp, "unsafe-inline", "%s CSP", name)
		assert.NotContainsf(t, csp, "unsafe-eval", "%s CSP", name)
		assert.Containsf(t, csp, "default-src 'none'", "%s CSP", name)
		assert.Equalf(t, "nosniff", hd.Get("X-Content-Type-Options"), "%s", name)
		assert.Equalf(t, "no-store", hd.Get("Cache-Control"), "%s: the HTML is a snapshot, never cached", name)
		assert.Equalf(t, "text/html; charset=utf-8", hd.Get("Content-Type"), "%s", name)
		assert.Equalf(t, strconv.Itoa(get.Body.Len()), hd.Get("Content-Length"), "%s", name)
		assert.Emptyf(t, hd.Get("Set-Cookie"), "%s sets no cookie", name)
		for key, want := range map[string]string{ // docs/API.md, GET /
			"X-Frame-Options":              "DENY", // the page's controls cannot be framed (clickjacking)
			"Referrer-Policy":              "no-referrer",
			"Cross-Origin-Opener-Policy":   "same-origin",
			"Cross-Origin-Resource-Policy": "same-origin",
		} {
			assert.Equalf(t, want, hd.Get(key), "%s %s", name, key)
		}
	}
	t.Run("OtherMethods405", func(t *testing.T) {
		rec := do(t, h, http.MethodPost, "/", "", "")
		requireError(t, rec, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
		assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	})
}

// TestPageNoToken shows that the page needs no token and that a wrong
// token does not matter to it (it is not an /api route).
func TestPageNoToken(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	for _, token := range []string{"", "not-a-token", opsToken} {
		rec := do(t, h, http.MethodGet, "/", token, "")
		assert.Equalf(t, http.StatusOK, rec.Code, "token %q", token)
		assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
	}
}

// TestPageLeaksNoDrainRequest shows that the HTML carries nothing of the
// drain request nor anything else that needs a token (principal, request
// id, epoch, pid, seq), whatever token the request carries: those come
// only from the API, to a page that holds a token.
func TestPageLeaksNoDrainRequest(t *testing.T) {
	gw := &Gateway{StatusFn: func() api.Status {
		return api.Status{Seq: 918273, State: fsm.Draining, ActiveAgents: 2, PID: 56473,
			Epoch: "boot-secret:777", EpochError: "epoch-error-secret", UptimeSeconds: 31415,
			Drain: &api.DrainInfo{Action: "drain", Principal: "principal-xyzzy", RequestID: "req-plugh-42",
				Epoch: "boot-secret:777", SuppressNotification: true, Status: "active", Reason: "reason-secret"},
			Agent: &api.AgentStatus{Kind: "http", Failures: 3, LastError: "agent-error-secret"}}
	}, TurnsFn: func() []api.TurnInfo {
		return []api.TurnInfo{{Session: "session-secret", TurnID: "turn-secret"}}
	}, HistoryFn: func() []api.HistoryEntry {
		return []api.HistoryEntry{{Kind: gateway.HistoryDrain, Principal: "history-principal-secret"}}
	}}
	h := MustServer(t, gw).Handler()
	for _, token := range []string{"", opsToken} {
		body := do(t, h, http.MethodGet, "/", token, "").Body.String()
		require.Contains(t, body, "draining")
		for _, secret := range []string{"principal-xyzzy", "req-plugh-42", "boot-secret", "epoch-error-secret",
			"56473", "918273", "31415", "reason-secret", "agent-error-secret", "session-secret", "turn-secret", "history-principal-secret"} {
			assert.NotContainsf(t, body, secret, "token %q", token)
		}
	}
}

// TestPageEscapes shows that what the page shows is escaped: a state that
// is not one of the four (it cannot be, but the page must not trust it)
// arrives as text, with no colour class of its own and nothing marked in
// the diagram.
func TestPageEscapes(t *testing.T) {
	evil := fsm.State(`<script>alert("x")</script><img src=x onerror=alert(1)>`)
	gw := &Gateway{StatusFn: func() api.Status { return api.Status{State: evil} }}
	rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.NotContains(t, body, `<script>alert`)
	assert.NotContains(t, body, `<img`)
	assert.Contains(t, body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`)
	assert.Contains(t, body, `class="badge state-unknown"`)
	assert.NotContains(t, body, `class="state current"`)
}

// TestPageNeedsNoInlineScript shows that the HTML works under its CSP:
// every script is an external file from this origin, no event-handler or
// style attribute, no javascript: URL; and the files it names are served.
func TestPageNeedsNoInlineScript(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	body := do(t, h, http.MethodGet, "/", "", "").Body.String()
	scripts := regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	require.Len(t, scripts, 1)
	assert.Contains(t, scripts[0][1], `src="/static/page.js`)
	assert.Empty(t, strings.TrimSpace(scripts[0][2]), "no inline script")
	assert.NotRegexp(t, `(?i)\son[a-z]+\s*=`, body, "no event-handler attributes")
	assert.NotRegexp(t, `(?i)\sstyle\s*=`, body, "no style attributes (style-src 'self')")
	assert.NotContains(t, body, "<style")
	assert.NotContains(t, strings.ToLower(body), "javascript:")
	assert.Contains(t, body, `<noscript><meta http-equiv="refresh" content="5"></noscript>`)
	assert.Regexp(t, `<section id="control" hidden>`, body, "the token form is for the script only: without it, nothing could submit a token into a URL")

	for _, ref := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1) {
		rec := do(t, h, http.MethodGet, strings.ReplaceAll(ref[1], "&amp;", "&"), "", "")
		assert.Equalf(t, http.StatusOK, rec.Code, "GET %s", ref[1])
	}
}

// TestPageStaticFiles shows how the script and the style are served:
// their types with nosniff, revalidated by ETag, HEAD too; any other
// path under /static is a JSON 404.
func TestPageStaticFiles(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	for path, ctype := range map[string]string{
		page.ScriptPath: "text/javascript; charset=utf-8",
		page.StylePath:  "text/css; charset=utf-8",
	} {
		t.Run(path, func(t *testing.T) {
			rec := do(t, h, http.MethodGet, path, "", "")
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, ctype, rec.Header().Get("Content-Type"))
			assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			assert.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
			assert.NotEmpty(t, rec.Body.String())
			etag := rec.Header().Get("ETag")
			require.NotEmpty(t, etag)

			req, err := http.NewRequest(http.MethodGet, path, nil)
			require.NoError(t, err)
			req.Header.Set("If-None-Match", etag)
			rw := httptest.NewRecorder()
			h.ServeHTTP(rw, req)
			assert.Equal(t, http.StatusNotModified, rw.Code)

			head := do(t, h, http.MethodHead, path, "", "")
			assert.Equal(t, http.StatusOK, head.Code)
			assert.Empty(t, head.Body.String())
		})
	}
	for _, path := range []string{"/static/", "/static/page.html", "/static/../page.js", "/page.js", "/index.html"} {
		requireError(t, do(t, h, http.MethodGet, path, "", ""), http.StatusNotFound, api.CodeNotFound)
	}
}

// TestPageDiagram shows the lifecycle diagram: well-formed SVG with one
// box per state in declaration order, a label for every event that the
// Mermaid of fsm.Describe draws (the diagram comes from the same rules),
// and the same bytes for the same state.
func TestPageDiagram(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	body := do(t, h, http.MethodGet, "/", "", "").Body.String()
	svg := regexp.MustCompile(`(?s)<svg class="lifecycle".*?</svg>`).FindString(body)
	require.NotEmpty(t, svg, "inline svg")

	dec := xml.NewDecoder(strings.NewReader(svg))
	var states, labels []string
	inLabel := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the svg is well-formed XML")
		switch tk := tok.(type) {
		case xml.StartElement:
			inLabel = false
			for _, a := range tk.Attr {
				if tk.Name.Local == "g" && a.Name.Local == "data-state" {
					states = append(states, a.Value)
				}
				if tk.Name.Local == "text" && a.Name.Local == "class" && strings.HasPrefix(a.Value, "label") {
					inLabel = true
				}
			}
		case xml.CharData:
			if inLabel {
				labels = append(labels, string(tk))
			}
		case xml.EndElement:
			inLabel = false
		}
	}
	want := make([]string, len(fsm.States))
	for i, s := range fsm.States {
		want[i] = string(s)
	}
	assert.Equal(t, want, states)

	mermaid, err := fsm.Describe(fsm.Mermaid)
	require.NoError(t, err)
	var edges []string
	for line := range strings.SplitSeq(mermaid, "\n") {
		if _, label, ok := strings.Cut(line, ": "); ok && strings.Contains(line, " --> ") {
			edges = append(edges, label)
		}
	}
	require.NotEmpty(t, edges)
	assert.ElementsMatch(t, edges, labels, "one label per transition and no-op of fsm.Describe")
	for _, s := range fsm.States {
		if note := regexp.MustCompile(`note right of ` + string(s) + `: refuses (.*)`).FindStringSubmatch(mermaid); note != nil {
			for ev := range strings.SplitSeq(note[1], ", ") {
				assert.Containsf(t, svg, ev, "refusal of %s by %s", ev, s)
			}
		}
	}

	again := regexp.MustCompile(`(?s)<svg class="lifecycle".*?</svg>`).FindString(do(t, h, http.MethodGet, "/", "", "").Body.String())
	assert.Equal(t, svg, again, "deterministic")
}
