package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// turnGateway is a zero-work agent: Turn answers the text at once. The
// other methods are the fake's.
type turnGateway struct{ *Gateway }

func (turnGateway) Turn(_ context.Context, _, text string) (string, error) { return text, nil }

const (
	benchPath = "/v1/sessions/bench/messages"
	benchBody = `{"text":"hello, agent"}`
)

// bareTurn is the baseline: a plain net/http handler doing the same work
// as a turn through the server (bearer check against the same Tokens,
// JSON decode of {"text"}, the gateway call, JSON encode of
// {"session","reply"}), without routing, strictness or metrics.
func bareTurn(tokens *server.Tokens, gw server.Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if _, ok := tokens.Lookup(token); !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		session := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/sessions/"), "/messages")
		var body api.MessageBody
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, server.MaxBodyBytes)).Decode(&body); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply, err := gw.Turn(r.Context(), session, body.Text)
		if err != nil {
			http.Error(w, "failed", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.MessageResponse{Session: session, Reply: reply})
	}
}

// benchWriter is a minimal ResponseWriter: it keeps the status and
// discards the body.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *benchWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}

// rewindBody is a request body that can be read again after reset.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

func benchHandlers(b *testing.B) map[string]http.Handler {
	gw := turnGateway{&Gateway{}}
	tokens := server.NewTokens(map[string]string{"ops": opsToken, "other": otherToken})
	// Info, like a deployment: the per-request debug line is off.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Gateway: gw, Tokens: tokens, Logger: logger})
	require.NoError(b, err)
	// The real thing, as quiesce run has it: the gateway with the echo
	// agent at zero work and the server's metrics as its metrics.
	metrics := server.NewMetrics()
	real, err := gateway.New(gateway.Config{Home: b.TempDir(), Agent: agent.NewEcho(0), Logger: logger,
		Metrics: metrics, WatchInterval: -1})
	require.NoError(b, err)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = real.Shutdown(ctx, true)
		_ = real.Close()
	})
	require.NoError(b, real.Start(context.Background()))
	rs, err := server.New(server.Config{Addr: "127.0.0.1:0", Gateway: real, Tokens: tokens, Metrics: metrics, Logger: logger})
	require.NoError(b, err)
	return map[string]http.Handler{
		"baseline=bare-net-http": bareTurn(tokens, gw),
		"quiesce-server":         s.Handler(),
		"quiesce-real-gateway":   rs.Handler(),
	}
}

var benchOrder = []string{"baseline=bare-net-http", "quiesce-server", "quiesce-real-gateway"}

// BenchmarkTurnHTTP compares a turn through the server (zero-work agent;
// quiesce-server with a fake gateway, quiesce-real-gateway with the real
// one and the echo agent at zero work, as the bench driver runs it) with
// a bare net/http handler doing the same work: "direct" calls
// ServeHTTP on a minimal ResponseWriter (no network), "loopback-c8" sends
// real requests over loopback from 8 goroutines.
func BenchmarkTurnHTTP(b *testing.B) {
	handlers := benchHandlers(b)
	b.Run("direct", func(b *testing.B) {
		for _, name := range benchOrder {
			h := handlers[name]
			b.Run(name, func(b *testing.B) {
				body := &rewindBody{}
				req := httptest.NewRequest(http.MethodPost, benchPath, nil)
				req.Header.Set("Authorization", "Bearer "+opsToken)
				req.Header.Set("Content-Type", "application/json")
				w := &benchWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					body.Reset([]byte(benchBody))
					req.Body = body
					clear(w.h)
					w.code, w.n = 0, 0
					h.ServeHTTP(w, req)
					require.Equalf(b, http.StatusOK, w.code, "status %d", w.code)
				}
			})
		}
	})
	b.Run("loopback-c8", func(b *testing.B) {
		for _, name := range benchOrder {
			h := handlers[name]
			b.Run(name, func(b *testing.B) {
				srv := httptest.NewServer(h)
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
				defer client.CloseIdleConnections()
				var clients atomic.Int64
				b.SetParallelism((8 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					// Each client its own session, as the bench driver's:
					// the real gateway runs one turn per session at a time.
					url := srv.URL + "/v1/sessions/bench" + strconv.FormatInt(clients.Add(1), 10) + "/messages"
					for pb.Next() {
						req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(benchBody))
						if !assert.NoError(b, err) { // not FailNow: RunParallel bodies run off the benchmark goroutine
							return
						}
						req.Header.Set("Authorization", "Bearer "+opsToken)
						req.Header.Set("Content-Type", "application/json")
						resp, err := client.Do(req)
						if !assert.NoError(b, err) { // not FailNow: RunParallel bodies run off the benchmark goroutine
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						if !assert.Equal(b, http.StatusOK, resp.StatusCode, "status") {
							return
						}
					}
				})
			})
		}
	})
}
