// Command pollloop is the bench's faithful baseline for the marker watcher:
// it stats $home/.drain_request.json every --interval (1 s) and flips a flag,
// noting the instant it flipped. GET /readyz answers 503 while the flag says
// draining, 200 otherwise; GET /state?after=N waits (up to 5 s) until the
// flag has flipped more than N times and answers
// {"draining":bool,"since":<unix ns of the last flip>,"n":<flips>} (at
// once when after is -1 or missing), so the
// driver reads the flip's own instant, as it does the gateway's
// state_since, without polling it. Built and run by the bench driver only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// view is the poll loop's view of the marker; mu guards it (the ticker
// writes it, HTTP handlers read it).
type view struct {
	mu       sync.Mutex
	draining bool
	since    time.Time
	n        uint64
	changed  chan struct{} // closed and replaced at every flip
}

func (f *view) set(d bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d == f.draining {
		return
	}
	f.draining, f.since, f.n = d, time.Now(), f.n+1
	close(f.changed)
	f.changed = make(chan struct{})
}

type state struct {
	Draining bool   `json:"draining"`
	Since    int64  `json:"since"`
	N        uint64 `json:"n"`
}

func (f *view) get() (state, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return state{f.draining, f.since.UnixNano(), f.n}, f.changed
}

func main() {
	home := flag.String("home", ".", "directory holding .drain_request.json")
	interval := flag.Duration("interval", time.Second, "poll interval")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (empty: no HTTP, poll only)")
	flag.Parse()
	path := filepath.Join(*home, ".drain_request.json")
	f := &view{since: time.Now(), changed: make(chan struct{})}
	go func() {
		t := time.NewTicker(*interval)
		for range t.C {
			_, err := os.Stat(path)
			f.set(err == nil)
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
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if st, _ := f.get(); st.Draining {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"ok":false}`))
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})
	mux.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) {
		after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		if err != nil {
			after = -1 // answer at once
		}
		timeout := time.After(5 * time.Second)
		for {
			st, ch := f.get()
			if int64(st.N) > after {
				json.NewEncoder(w).Encode(st)
				return
			}
			select {
			case <-ch:
			case <-timeout:
				json.NewEncoder(w).Encode(st)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	http.Serve(ln, mux)
}
