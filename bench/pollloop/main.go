// Command pollloop is the bench's faithful baseline for the marker watcher:
// it stats $home/.drain_request.json every --interval (1 s) and flips a flag;
// GET /readyz answers 503 while the flag says draining, 200 otherwise, so the
// driver measures it exactly as it measures the gateway. Built and run by the
// bench driver only.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

func main() {
	home := flag.String("home", ".", "directory holding .drain_request.json")
	interval := flag.Duration("interval", time.Second, "poll interval")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (empty: no HTTP, poll only)")
	flag.Parse()
	path := filepath.Join(*home, ".drain_request.json")
	var draining atomic.Bool
	go func() {
		t := time.NewTicker(*interval)
		for range t.C {
			_, err := os.Stat(path)
			draining.Store(err == nil)
		}
	}()
	if *addr == "" {
		fmt.Println("ready")
		select {}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pollloop:", err)
		os.Exit(78)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"ok":false}`))
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
}
