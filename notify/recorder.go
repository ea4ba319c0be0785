package notify

import (
	"context"
	"sync"
	"time"
)

// Recorder is a Sink for tests: it records the messages it accepts, in
// order, under a mutex. The zero value records every message at once.
//
// Delay and Hook let a test make the sink slow, failing or stuck. Set them
// before the first Send and do not change them afterwards.
type Recorder struct {
	// Delay, if positive, is waited before each message is accepted. If ctx
	// ends first, Send returns ctx.Err() and records nothing.
	Delay time.Duration
	// Hook, if set, is called after Delay with Send's arguments. If it
	// returns an error, Send returns it and records nothing. A Hook that
	// blocks makes the sink stuck; one that ignores ctx makes it misbehave.
	Hook func(ctx context.Context, m Message) error

	mu    sync.Mutex
	msgs  []Message
	calls int
}

// Send records m, subject to Delay and Hook.
func (r *Recorder) Send(ctx context.Context, m Message) error {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if r.Hook != nil {
		if err := r.Hook(ctx, m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

// Messages returns a copy of the recorded messages, in the order they were
// accepted.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Count returns how many recorded messages have the given kind and target.
func (r *Recorder) Count(kind Kind, target string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.Kind == kind && m.Target == target {
			n++
		}
	}
	return n
}

// Calls returns how many times Send was called, including calls that
// recorded nothing.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// String returns "recorder", the sink's name in log lines.
func (r *Recorder) String() string { return "recorder" }
