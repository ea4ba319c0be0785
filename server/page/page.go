package page

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// The status page: GET / (and HEAD), no token needed; the server routes
// it (Paths) to a Page. It is rendered on
// the server with html/template and shows only what /readyz and /metrics
// already tell anyone who can reach the port: the state and since when
// ("draining for 3m12s"), the turns in flight and the oldest turn's age,
// the spooled events and pending webhook messages, the version, a link to
// /metrics, and the lifecycle
// diagram with the current state marked. Nothing from the drain request
// (who, why, request id), no session, pid or uptime is in it. Its script
// (a separate file, so the Content-Security-Policy needs no inline
// script) asks for a token, keeps it in sessionStorage, and with it shows
// the drain request with its expiry countdown, offers Drain, Drain again
// (refresh: the active request id, flag and reason) and Cancel, lists the
// turns in flight and the last lifecycle events, and follows changes
// through status?wait=change long-polls. Without JavaScript the page is
// read-only and reloads itself every PageRefreshSeconds.

// Paths of the status page and its two static files.
const (
	Path       = "/"
	ScriptPath = "/static/page.js"
	StylePath  = "/static/page.css"
)

// Paths lists the paths a Page serves, each for GET and HEAD: Path, then
// its static files.
func Paths() []string { return []string{Path, ScriptPath, StylePath} }

// RefreshSeconds is how often the page reloads itself when
// JavaScript is off (a <meta http-equiv="refresh"> inside <noscript>).
const RefreshSeconds = 5

// CSP is the Content-Security-Policy of the status page: scripts,
// styles and requests from this origin only, no inline script or style, no
// plugins, no framing, no form submission (the token form is handled by
// the script and never submitted, so the token cannot land in a URL).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed page.html page.js page.css
var pageFiles embed.FS

// pageTemplate is the status page's template.
var pageTemplate = template.Must(template.ParseFS(pageFiles, "page.html"))

// staticFile is an embedded file served at a fixed path.
type staticFile struct {
	body        []byte
	contentType string
	etag        string // strong, from the content
}

// staticFiles are the page's script and style, by path.
var staticFiles = map[string]staticFile{
	ScriptPath: mustStatic("page.js", "text/javascript; charset=utf-8"),
	StylePath:  mustStatic("page.css", "text/css; charset=utf-8"),
}

func mustStatic(name, contentType string) staticFile {
	body, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("page: embedded %s: %v", name, err))
	}
	sum := sha256.Sum256(body)
	return staticFile{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// pageData is what the page template shows. It carries nothing that
// needs a token.
type pageData struct {
	State          fsm.State
	StateClass     string // "state-running", or "state-unknown" for a state the page does not know
	Description    string
	StateSince     string // how long the state has lasted, "3m12s"; "" when unknown
	StateSinceISO  string // when it began (RFC 3339), for the script's clock
	Version        string
	InFlight       int
	OldestTurn     string // "" with no turn in flight
	SpooledEvents  int
	WebhookPending int // messages the webhook keeps for redelivery (0 without one)
	RenderedAt     string
	RefreshSeconds int
	Diagram        template.HTML
	ScriptURL      string
	StyleURL       string
}

// Page serves the status page and its static files (see Paths). It keeps
// no state between requests (no locks, no goroutines): each page is
// rendered from one Status snapshot.
type Page struct {
	status func() api.Status
	logger *slog.Logger
	fail   func(http.ResponseWriter, *http.Request, error)
}

// New returns the Page that shows what status returns. A diagram that
// cannot be drawn is logged to logger (nil: slog.Default()) and the page
// shows a note in its place; an error rendering the page itself is
// answered by fail (the server's error writer; nil: a plain 500).
func New(status func() api.Status, logger *slog.Logger, fail func(http.ResponseWriter, *http.Request, error)) *Page {
	if logger == nil {
		logger = slog.Default()
	}
	if fail == nil {
		fail = func(w http.ResponseWriter, _ *http.Request, _ error) {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		}
	}
	return &Page{status: status, logger: logger, fail: fail}
}

// ServeHTTP serves the page at Path and the static files at their paths
// (GET and HEAD; the server routes only those). Any other path is a plain
// 404.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch _, static := staticFiles[r.URL.Path]; {
	case r.URL.Path == Path:
		p.servePage(w, r)
	case static:
		serveStatic(w, r)
	default:
		http.NotFound(w, r)
	}
}

// setPageHeaders sets the security headers every page response carries.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// servePage renders the status page. The HTML is never cached: it is a
// snapshot of the state.
func (p *Page) servePage(w http.ResponseWriter, r *http.Request) {
	st := p.status()
	diagram, err := lifecycleSVG(st.State)
	if err != nil {
		p.logger.Error("status page: lifecycle diagram", "error", err)
		diagram = `<p class="error">The lifecycle diagram could not be drawn; see the gateway's log.</p>`
	}
	class := "state-unknown"
	if slices.Contains(fsm.States, st.State) {
		class = "state-" + string(st.State)
	}
	now := time.Now()
	data := pageData{
		State:          st.State,
		StateClass:     class,
		Description:    stateDescriptions[st.State],
		Version:        st.Version,
		InFlight:       st.ActiveAgents,
		OldestTurn:     formatAge(st.OldestTurnSeconds),
		SpooledEvents:  st.SpooledEvents,
		WebhookPending: st.WebhookPending,
		RenderedAt:     now.UTC().Format(time.RFC3339),
		RefreshSeconds: RefreshSeconds,
		Diagram:        diagram,
		ScriptURL:      ScriptPath + "?v=" + staticFiles[ScriptPath].etag[1:9],
		StyleURL:       StylePath + "?v=" + staticFiles[StylePath].etag[1:9],
	}
	if !st.StateSince.IsZero() {
		data.StateSince = formatSince(now.Sub(st.StateSince))
		data.StateSinceISO = st.StateSince.UTC().Format(time.RFC3339Nano)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		p.fail(w, r, fmt.Errorf("status page: %w", err))
		return
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// serveStatic serves the page's script or style. They may be cached but
// are revalidated on every use (ETag), so a new binary's files are used at
// once.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	f := staticFiles[r.URL.Path]
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.body)
	}
}

// formatSince shows how long a state has lasted, to the second:
// "45s", "3m12s", "26h3m0s" (the page's script uses the same form).
func formatSince(d time.Duration) string {
	return max(d, 0).Truncate(time.Second).String()
}

// formatAge shows a turn's age: "" for none, tenths of a second below
// 10 s, then seconds, minutes and hours (the page's script uses the same units).
func formatAge(seconds float64) string {
	switch {
	case !(seconds > 0) || math.IsInf(seconds, 0):
		return ""
	case seconds < 10:
		return strconv.FormatFloat(seconds, 'f', 1, 64) + " s"
	}
	s := int64(math.Round(seconds))
	if s < 60 {
		return fmt.Sprintf("%d s", s)
	}
	m := s / 60
	s %= 60
	if m < 60 {
		return fmt.Sprintf("%d min %d s", m, s)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}
