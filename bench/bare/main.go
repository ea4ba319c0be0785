// Command bare is the bench baseline for the gateway's turn path: a bare
// net/http server doing the same work per turn (bearer check, JSON decode of
// {"text"}, JSON encode of {"session","reply"}), optionally sleeping --work in
// the handler, and calling http.Server.Shutdown on SIGTERM (with a
// --shutdown-timeout deadline, then it exits). It is built and run by the
// bench driver (go run ./bench/driver, and the driver's test).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	tokensFile := flag.String("tokens-file", "", `"principal token" lines`)
	work := flag.Duration("work", 0, "time each turn sleeps")
	shutdownTimeout := flag.Duration("shutdown-timeout", 30*time.Second, "the deadline of http.Server.Shutdown's context on SIGTERM")
	flag.Parse()

	tokens := map[string]string{}
	if f, err := os.Open(*tokensFile); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p := strings.Fields(sc.Text()); len(p) == 2 && !strings.HasPrefix(p[0], "#") {
				tokens[p[1]] = p[0]
			}
		}
		f.Close()
	} else {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(78)
	}
	var inflight atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inflight", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, inflight.Load())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	})
	mux.HandleFunc("POST /v1/sessions/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tokens[tok] == "" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var in struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
			http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
			return
		}
		inflight.Add(1)
		if *work > 0 {
			select {
			case <-time.After(*work):
			case <-r.Context().Done():
				inflight.Add(-1)
				return
			}
		}
		inflight.Add(-1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Session string `json:"session"`
			Reply   string `json:"reply"`
		}{r.PathValue("id"), in.Text})
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(78)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
	<-done
}
