// Command upstream is a tiny agent service to put quiesce in front of: it
// answers POST / {"session","text","turn_id","event_id"} with
// {"reply": ...}, or, when the client accepts text/event-stream, streams
// the reply word by word as server-sent events. Each word takes --delay.
//
//	go run ./examples/upstream --addr 127.0.0.1:9000
//	quiesce run --dev --agent http --agent-url http://127.0.0.1:9000/
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	delay := flag.Duration("delay", 100*time.Millisecond, "time each word of the reply takes")
	flag.Parse()
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Session string `json:"session"`
			Text    string `json:"text"`
			TurnID  string `json:"turn_id"`
			EventID string `json:"event_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Printf("turn %s session %s event %q: %q", req.TurnID, req.Session, req.EventID, req.Text)
		words := strings.SplitAfter("you said: "+req.Text, " ")
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			time.Sleep(time.Duration(len(words)) * *delay)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"reply": strings.Join(words, "")})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, word := range words {
			select {
			case <-time.After(*delay):
			case <-r.Context().Done(): // quiesce cancelled the turn
				log.Printf("turn %s cancelled", req.TurnID)
				return
			}
			fmt.Fprintf(w, "data: %s\n\n", word)
			w.(http.Flusher).Flush()
		}
	})
	log.Printf("upstream agent on http://%s/", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
