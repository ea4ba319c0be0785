package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// seen is what the clients saw, counted as they go.
type seen struct {
	mu         sync.Mutex     // guards every field: 32 clients count at once
	sent       int            // turns sent
	streamed   int            // of which with Accept: text/event-stream
	answered   int            // 200 with the reply the agent gave
	refused    map[string]int // 503 of a turn that never started, by error code (draining, no_gateway)
	failed     map[string]int // everything else, by kind
	examples   []string       // the first few failures, for the report
	eventsSent int
	eventsAck  map[string]string // event id -> client event id, for 202 answers
	eventsNot  map[string]int    // events not acknowledged, by kind
}

func newSeen() *seen {
	return &seen{refused: map[string]int{}, failed: map[string]int{}, eventsAck: map[string]string{}, eventsNot: map[string]int{}}
}

// connectionError is the failure kind of a request that got no HTTP
// answer at all.
const connectionError = "connection error"

func (s *seen) fail(kind, example string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[kind]++
	if len(s.examples) < 5 {
		s.examples = append(s.examples, kind+": "+example)
	}
}

// clientConfig is how the clients reach the fleet.
type clientConfig struct {
	turnsURL    string // the balancer's turns frontend
	eventsURL   string // the balancer's internal events frontend
	token       string
	streamShare float64 // share of turns sent with Accept: text/event-stream
	eventShare  float64 // share of requests that are internal events
	sessions    int     // sessions per client
}

// runClients runs n keep-alive clients until stop ends; each finishes the
// request it is in before returning (requests are bounded by ctx).
func runClients(ctx, stop context.Context, n int, cfg clientConfig, s *seen) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		// One client: one keep-alive connection to each frontend, one
		// request at a time.
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
			for k := 0; stop.Err() == nil; k++ {
				if rand.Float64() < cfg.eventShare {
					sendEvent(ctx, hc, cfg, s, fmt.Sprintf("c%02d-jobs", c), fmt.Sprintf("c%02d-e%d", c, k))
				} else {
					session := fmt.Sprintf("c%02d-s%d", c, k%cfg.sessions)
					sendTurn(ctx, hc, cfg, s, session, fmt.Sprintf("c%02d-t%d", c, k), rand.Float64() < cfg.streamShare)
				}
				time.Sleep(rand.N(50 * time.Millisecond))
			}
		}()
	}
	return &wg
}

// errorBody is a JSON error of a gateway or of the balancer.
type errorBody struct {
	Error string `json:"error"`
}

// sendTurn sends one turn through the balancer and counts what came back.
func sendTurn(ctx context.Context, hc *http.Client, cfg clientConfig, s *seen, session, id string, stream bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.turnsURL+"/v1/sessions/"+session+"/messages",
		strings.NewReader(`{"text":"turn `+id+`"}`))
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	s.mu.Lock()
	s.sent++
	if stream {
		s.streamed++
	}
	s.mu.Unlock()
	resp, err := hc.Do(req)
	if err != nil {
		s.fail(connectionError, err.Error())
		return
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(body)
		var e errorBody
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode == http.StatusServiceUnavailable && (e.Error == "draining" || e.Error == "no_gateway") {
			s.mu.Lock()
			s.refused[e.Error]++
			s.mu.Unlock()
			return
		}
		s.fail(fmt.Sprintf("%d %s", resp.StatusCode, e.Error), strings.TrimSpace(string(b)))
		return
	}
	want := "ok " + id
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var r struct{ Reply string }
		if err := json.NewDecoder(body).Decode(&r); err != nil || r.Reply != want {
			s.fail("wrong reply", fmt.Sprintf("turn %s: reply %q, error %v", id, r.Reply, err))
			return
		}
	} else if kind, detail := readStream(body, want); kind != "" {
		s.fail(kind, fmt.Sprintf("turn %s: %s", id, detail))
		return
	}
	s.mu.Lock()
	s.answered++
	s.mu.Unlock()
}

// readStream reads a turn's server-sent events to their end: "" when the
// stream ended with a done event carrying want, else what went wrong.
func readStream(r io.Reader, want string) (kind, detail string) {
	sc := bufio.NewScanner(r)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			event = ev
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "done":
			var d struct{ Reply string }
			if err := json.Unmarshal([]byte(data), &d); err != nil || d.Reply != want {
				return "wrong reply", fmt.Sprintf("done %s", data)
			}
			return "", ""
		case "failed", "interrupted":
			return "stream " + event, data
		}
	}
	if err := sc.Err(); err != nil {
		return "truncated stream", err.Error()
	}
	return "truncated stream", "the stream ended without done, failed or interrupted"
}

// sendEvent posts one internal event through the balancer's internal
// frontend and records its event id when acknowledged (202).
func sendEvent(ctx context.Context, hc *http.Client, cfg clientConfig, s *seen, session, id string) {
	body, _ := json.Marshal(map[string]string{"session": session, "text": "event " + id})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.eventsURL+"/api/gateway/events", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	req.Header.Set("Content-Type", "application/json")
	s.mu.Lock()
	s.eventsSent++
	s.mu.Unlock()
	resp, err := hc.Do(req)
	if err != nil {
		s.mu.Lock()
		s.eventsNot[connectionError]++
		s.mu.Unlock()
		return
	}
	defer resp.Body.Close()
	var r struct {
		EventID string `json:"event_id"`
		Error   string `json:"error"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case resp.StatusCode == http.StatusAccepted && err == nil && r.EventID != "":
		s.eventsAck[r.EventID] = id
	case err != nil && !errors.Is(err, io.EOF):
		s.eventsNot[fmt.Sprintf("%d unreadable", resp.StatusCode)]++
	default:
		s.eventsNot[fmt.Sprintf("%d %s", resp.StatusCode, r.Error)]++
	}
}
