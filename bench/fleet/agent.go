package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// agent is the upstream every gateway of the fleet runs its turns on
// (quiesce run --agent http): it works 50-500 ms per turn, answers as JSON
// or as an event stream, and records what started and what completed, so
// the drill can tell turns started twice and events acknowledged but
// never run.
type agent struct {
	workMin, workMax time.Duration
	srv              *http.Server
	url              string

	mu        sync.Mutex     // guards the records below: every gateway calls in concurrently
	turns     map[string]int // client request id -> times its turn started
	turnIDs   map[string]int // the gateway's turn id -> times it started
	events    map[string]int // event id -> times its turn completed
	evStarts  map[string]int // event id -> times its turn started
	active    map[string]int // session -> turns running now
	overlaps  int            // a turn started while its session had one running (on any gateway)
	cancelled int            // turns whose gateway gave up on them mid-way
}

// agentRequest is what the http agent of a gateway sends per turn.
type agentRequest struct {
	Session string `json:"session"`
	Text    string `json:"text"`
	TurnID  string `json:"turn_id"`
	EventID string `json:"event_id"`
}

// startAgent serves the agent on a loopback port.
func startAgent(workMin, workMax time.Duration) (*agent, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &agent{workMin: workMin, workMax: workMax, turns: map[string]int{}, turnIDs: map[string]int{},
		events: map[string]int{}, evStarts: map[string]int{}, active: map[string]int{}}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	a.url = "http://" + ln.Addr().String() + "/turn"
	// Serves until close.
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *agent) close() { _ = a.srv.Close() }

// ServeHTTP runs one turn.
func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req agentRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A user turn's text is "turn <client request id>"; an event's
	// "event <client event id>".
	_, id, _ := strings.Cut(req.Text, " ")
	a.mu.Lock()
	if req.EventID != "" {
		a.evStarts[req.EventID]++
	} else {
		a.turns[id]++
		a.turnIDs[req.TurnID]++
	}
	a.active[req.Session]++
	if a.active[req.Session] > 1 {
		a.overlaps++
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.active[req.Session]--
		a.mu.Unlock()
	}()

	work := a.workMin + rand.N(a.workMax-a.workMin+1)
	reply := []string{"ok ", id}
	if rand.IntN(2) == 0 {
		if !sleep(r.Context(), work) {
			a.gaveUp()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"reply": strings.Join(reply, "")})
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, part := range reply {
			if !sleep(r.Context(), work/time.Duration(len(reply))) {
				a.gaveUp()
				return
			}
			fmt.Fprintf(w, "data: %s\n\n", part)
			http.NewResponseController(w).Flush()
		}
	}
	if req.EventID != "" {
		a.mu.Lock()
		a.events[req.EventID]++
		a.mu.Unlock()
	}
}

func (a *agent) gaveUp() {
	a.mu.Lock()
	a.cancelled++
	a.mu.Unlock()
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// agentTally is what the agent saw, read once the drill has settled.
type agentTally struct {
	turnsStartedTwice int // client request ids whose turn started more than once
	turnIDsTwice      int // gateway turn ids seen more than once
	eventsRun         map[string]int
	eventsStarted     map[string]int
	overlaps          int
	cancelled         int
}

// tally copies the agent's records.
func (a *agent) tally() agentTally {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := agentTally{eventsRun: map[string]int{}, eventsStarted: map[string]int{}, overlaps: a.overlaps, cancelled: a.cancelled}
	for _, n := range a.turns {
		if n > 1 {
			t.turnsStartedTwice++
		}
	}
	for _, n := range a.turnIDs {
		if n > 1 {
			t.turnIDsTwice++
		}
	}
	for id, n := range a.events {
		t.eventsRun[id] = n
	}
	for id, n := range a.evStarts {
		t.eventsStarted[id] = n
	}
	return t
}
