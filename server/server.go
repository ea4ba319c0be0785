package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/server/page"
)

// Defaults and limits.
const (
	// DefaultAddr is the listen address when Config.Addr is empty:
	// loopback only.
	DefaultAddr = "127.0.0.1:8470"
	// DefaultRetryAfter is the Retry-After of a 503 when
	// Config.RetryAfter is zero.
	DefaultRetryAfter = 5 * time.Second
	// MaxBodyBytes is the largest request body accepted (413 above it).
	MaxBodyBytes = 64 << 10
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, headers and
	// body (Config.ReadTimeout).
	DefaultReadTimeout = 30 * time.Second
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout = 2 * time.Minute
	// DefaultWaitTimeout is the timeout of status?wait=idle without one.
	DefaultWaitTimeout = 30 * time.Second
	// MaxWaitTimeout caps the timeout of status?wait=idle.
	MaxWaitTimeout = 5 * time.Minute
)

// Config configures a Server.
type Config struct {
	Addr       string        // listen address; DefaultAddr when empty
	Gateway    Gateway       // required
	Tokens     *Tokens       // bearer tokens for /api/* and /v1/*; nil authenticates nobody
	Metrics    *Metrics      // nil: NewMetrics()
	RetryAfter time.Duration // Retry-After of 503 answers; DefaultRetryAfter when zero
	// ReadTimeout bounds reading a request; DefaultReadTimeout when zero.
	ReadTimeout time.Duration
	Logger      *slog.Logger // nil: slog.Default()
}

// Server serves the quiesce HTTP API. Create it with New, start it with
// Open, stop it with Close.
type Server struct {
	addr       string
	gw         Gateway
	tokens     *Tokens
	metrics    *Metrics
	retryAfter time.Duration
	logger     *slog.Logger

	router   *mux.Router
	handler  http.Handler // serveHTTP: the path check, then the router
	notFound http.Handler // the counted JSON 404
	srv      *http.Server

	mu     sync.Mutex
	ln     net.Listener
	served bool       // Serve was called
	serve  chan error // receives Serve's result once
}

// New returns a Server with every route registered.
//
// The http.Server bounds reading a request (ReadHeaderTimeout for the
// headers, Config.ReadTimeout for headers and body) and idle keep-alive
// connections, so a slow client cannot pin a connection. It deliberately
// has no WriteTimeout: a turn's response is written when the turn ends,
// which may be long after the request arrived, and a WriteTimeout would
// cut it off. The read deadline does not reach a running turn either:
// net/http clears it once the body has been read to its end, which every
// handler does before calling the gateway (TestLongTurnKeepsContext).
func New(cfg Config) (*Server, error) {
	if cfg.Gateway == nil {
		return nil, errors.New("server: Config.Gateway is required")
	}
	s := &Server{
		addr:       cfg.Addr,
		gw:         cfg.Gateway,
		tokens:     cfg.Tokens,
		metrics:    cfg.Metrics,
		retryAfter: cfg.RetryAfter,
		logger:     cfg.Logger,
		serve:      make(chan error, 1),
	}
	if s.addr == "" {
		s.addr = DefaultAddr
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.retryAfter <= 0 {
		s.retryAfter = DefaultRetryAfter
	}
	readTimeout := cfg.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = DefaultReadTimeout
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.metrics.observe(s.gw.Status)

	r := mux.NewRouter()
	// mux would answer a path with dot segments or "//" with a 301 to its
	// cleaned form (and an empty body); such paths are 404s here instead
	// (uncleanPath), so mux must not clean.
	r.SkipClean(true)
	s.router = r
	// mux runs these two without any route's wrapping: count them here.
	s.notFound = s.count("unmatched", http.HandlerFunc(s.handleNotFound))
	r.NotFoundHandler = s.notFound
	r.MethodNotAllowedHandler = s.count("unmatched", http.HandlerFunc(s.handleMethodNotAllowed))

	// The turn route first: mux tries routes in order, and turns are the
	// hot path. handleMessage reads its {id} with r.PathValue (serveHTTP).
	r.Handle(MessagePathTemplate, s.auth(s.handleMessage)).Methods(http.MethodPost)
	// Every GET route also answers HEAD (mux does not imply it); net/http
	// discards the body of a HEAD answer.
	r.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", s.metrics.handler()).Methods(http.MethodGet, http.MethodHead)
	// GET / (the status page, no token) and its static files.
	statusPage := page.New(s.gw.Status, s.logger, s.writeError)
	for _, path := range page.Paths() {
		r.Handle(path, statusPage).Methods(http.MethodGet, http.MethodHead)
	}

	r.Handle("/api/gateway/drain", s.auth(s.handleDrain)).Methods(http.MethodPost)
	r.Handle("/api/gateway/status", s.auth(s.handleStatus)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(api.TurnsPath, s.auth(s.handleTurns)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(api.HistoryPath, s.auth(s.handleHistory)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/gateway/shutdown", s.auth(s.handleShutdown)).Methods(http.MethodPost)
	r.Handle("/api/gateway/events", s.auth(s.handleEvent)).Methods(http.MethodPost)
	r.Handle("/api/gateway/events/replay", s.auth(s.handleReplay)).Methods(http.MethodPost)
	if err := s.instrumentRoutes(); err != nil {
		return nil, err
	}
	s.handler = http.HandlerFunc(s.serveHTTP)

	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the server's HTTP handler (for httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Open listens on the configured address and serves in a goroutine: Listen
// then Serve. It listens synchronously, so an address already in use is
// reported here.
func (s *Server) Open() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.Serve()
	return nil
}

// Listen binds the configured address without serving yet: connections
// wait in the listen backlog until Serve. A caller can so claim the
// address before starting the gateway, and serve only once the gateway
// is ready, so no request is answered before its first reconcile.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("server: already listening")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Serve serves on the listener of Listen in a goroutine; its end is
// reported on Done. It panics if Listen has not succeeded.
func (s *Server) Serve() {
	s.mu.Lock()
	ln := s.ln
	if ln == nil || s.served {
		s.mu.Unlock()
		panic("server: Serve without Listen, or twice")
	}
	s.served = true
	s.mu.Unlock()
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serve <- err
	}()
}

// Addr returns the address the server listens on (host:port), or the
// configured address before Open.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Port returns the TCP port the server listens on, or 0 before Open.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return 0
	}
	return s.ln.Addr().(*net.TCPAddr).Port
}

// URL returns the server's base URL, e.g. http://127.0.0.1:8470.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Done returns a channel that receives, once, the error that ended
// serving: nil after Close, else the listener's error. Only valid after
// Serve.
func (s *Server) Done() <-chan error { return s.serve }

// Close stops the server gracefully: it stops listening, closes idle
// connections, then waits for in-flight requests to finish
// (http.Server.Shutdown). If ctx ends first, it cuts every remaining
// connection (http.Server.Close) and returns ctx.Err() without waiting for
// their handlers, so it returns by ctx's deadline whatever clients do: a
// body trickling in or an idle keep-alive connection cannot hold it
// (TestCloseBoundedBySlowUpload). It also closes a listener that Serve
// never used.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.ln != nil && !s.served {
		_ = s.ln.Close() // when serving, Shutdown closes it
	}
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// MessagePathTemplate is the route of a turn (POST); {id} is the session
// id, one path segment, percent-decoded.
const MessagePathTemplate = "/v1/sessions/{id}/messages"

// instrumentRoutes wraps every registered route's handler, once, in count
// under its path template, so a request pays no per-request middleware
// chain, closure or template lookup for its metrics.
func (s *Server) instrumentRoutes() error {
	return s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		h := route.GetHandler()
		if h == nil {
			return nil
		}
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return fmt.Errorf("server: route without a path template: %w", err)
		}
		route.Handler(s.count(tpl, h))
		return nil
	})
}

// serveHTTP answers a JSON 404, before routing, for a path that
// uncleanPath refuses (mux, told to SkipClean, never redirects it), and
// otherwise routes r with the router's Match and serves it with the
// handler mux chose (the route's, or its NotFound or MethodNotAllowed
// handler). The route's variables are r's path values (r.PathValue),
// set on r itself: handlers do not read mux.Vars.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if uncleanPath(r.URL.Path) {
		s.notFound.ServeHTTP(w, r)
		return
	}
	var match mux.RouteMatch
	if !s.router.Match(r, &match) { // not reached: the router has a NotFoundHandler
		s.notFound.ServeHTTP(w, r)
		return
	}
	for name, value := range match.Vars {
		r.SetPathValue(name, value)
	}
	match.Handler.ServeHTTP(w, r)
}

// count counts every request next serves under route, with its status.
func (s *Server) count(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		debug := s.logger.Enabled(r.Context(), slog.LevelDebug)
		var start time.Time
		if debug {
			start = time.Now()
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.countRequest(route, code)
		if debug {
			s.logger.Debug("http request", "method", r.Method, "path", r.URL.Path, "route", route,
				"status", code, "duration", time.Since(start))
		}
	})
}

// statusWriter records the status code. Unwrap lets
// http.ResponseController reach the connection underneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

// WriteHeader records the first status code.
func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// uncleanPath reports whether the decoded path p has an empty segment
// ("//") or a dot segment ("." or "..", also when sent percent-encoded as
// %2e or %2E, which the decoding has turned into dots). No route has one,
// and routing such a path by its cleaned form would let
// /v1/sessions/../messages reach another route than it names.
func uncleanPath(p string) bool {
	if strings.Contains(p, "//") {
		return true
	}
	if strings.IndexByte(p, '.') < 0 {
		return false // no dot, no dot segment: the common path, without splitting it
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errorf(http.StatusNotFound, api.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// handleMethodNotAllowed answers 405 with the methods the path's routes
// accept in Allow.
func (s *Server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	allow := s.allowedMethods(r)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, errorf(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
		"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
}

// allowedMethods returns, sorted, every method for which some route
// matches r's path: each route is tried with each of its methods.
func (s *Server) allowedMethods(r *http.Request) []string {
	set := map[string]bool{}
	_ = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		methods, err := route.GetMethods()
		if err != nil {
			return nil
		}
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if route.Match(probe, &match) && match.MatchErr == nil {
				set[m] = true
			}
		}
		return nil
	})
	allow := make([]string, 0, len(set))
	for m := range set {
		allow = append(allow, m)
	}
	sort.Strings(allow)
	return allow
}
