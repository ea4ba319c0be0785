package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
)

// errUpstream is what a failing fake upstream returns.
var errUpstream = errors.New("upstream: 502 bad gateway")

// eventAgent is a fake agent for internal events: an event fails while
// its text is listed in failing (or a try count says so), and every run
// is recorded; user turns reply at once.
type eventAgent struct {
	mu      sync.Mutex
	failFor map[string]int // text -> tries that fail before it works (-1: always)
	tries   map[string]int // event id -> tries so far
	ok      map[string]int // event id -> completed runs
	order   []string       // texts of completed event runs, in order
	ran     chan string    // receives the text of every event try
}

func newEventAgent(failFor map[string]int) *eventAgent {
	return &eventAgent{failFor: failFor, tries: map[string]int{}, ok: map[string]int{}, ran: make(chan string, 1024)}
}

func (a *eventAgent) Run(_ context.Context, t agent.Turn) (string, error) {
	if t.EventID == "" {
		return "re: " + t.Text, nil
	}
	a.mu.Lock()
	a.tries[t.EventID]++
	n, fail := a.tries[t.EventID], a.failFor[t.Text]
	failed := fail < 0 || n <= fail
	if !failed {
		a.ok[t.EventID]++
		a.order = append(a.order, t.Text)
	}
	a.mu.Unlock()
	a.ran <- t.Text
	if failed {
		return "", errUpstream
	}
	return "done", nil
}

// setFailFor changes how text behaves from now on.
func (a *eventAgent) setFailFor(text string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failFor[text] = n
}

// completed returns how often event id completed, and the texts of the
// completed runs in order.
func (a *eventAgent) completed(id string) (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ok[id], append([]string(nil), a.order...)
}

// TestEventSurvivesAnUpstreamBlip: an upstream that fails an event's
// first tries (more than the five tries the gateway used to make) and
// then works gets the event run once it works; nothing is rejected.
func TestEventSurvivesAnUpstreamBlip(t *testing.T) {
	agent := newEventAgent(map[string]int{"job done": 8})
	f := newFixture(t, func(c *Config) {
		c.Agent = agent
		c.EventRetryFor = time.Hour
	})
	f.g.eventBackoffBase = time.Millisecond
	rec, err := f.g.Event(context.Background(), "s", "job done")
	require.NoError(t, err)
	eventually(t, "the event completed", func() bool { n, _ := agent.completed(rec.ID); return n == 1 })
	eventually(t, "spool empty", func() bool { return f.g.spool.len() == 0 })
	_, err = os.Stat(filepath.Join(f.home, RejectedFileName))
	assert.True(t, os.IsNotExist(err), "nothing rejected: %v", err)
}

// TestEventRetriesLeaveTheSessionFreeAndInOrder: between two tries of a
// failing event its session takes user turns, while the session's next
// event waits behind the failing one and runs after it.
func TestEventRetriesLeaveTheSessionFreeAndInOrder(t *testing.T) {
	agent := newEventAgent(map[string]int{"first": -1})
	f := newFixture(t, func(c *Config) {
		c.Agent = agent
		c.EventRetryFor = time.Hour
	})
	f.g.eventBackoffBase = time.Hour // the retry waits until the test releases it
	first, err := f.g.Event(context.Background(), "s", "first")
	require.NoError(t, err)
	require.Equal(t, "first", recv(t, agent.ran), "first try")
	_, err = f.g.Event(context.Background(), "s", "second")
	require.NoError(t, err)

	eventually(t, "the first try has ended", func() bool { return f.g.m.InFlight() == 0 })
	reply, err := f.g.Turn(context.Background(), "s", "hello")
	require.NoError(t, err, "a user turn between two tries of the session's event")
	assert.Equal(t, "re: hello", reply)
	select {
	case text := <-agent.ran:
		require.Fail(t, fmt.Sprintf("%q ran while the session's earlier event waits for its retry", text))
	case <-time.After(100 * time.Millisecond):
	}

	// The upstream works again: the retry runs, then the next event.
	agent.setFailFor("first", 0)
	f.g.evMu.Lock()
	f.g.events[first.ID].retryAt = time.Now()
	f.g.evMu.Unlock()
	f.g.dispatch()
	eventually(t, "both events completed", func() bool { _, order := agent.completed(""); return len(order) == 2 })
	_, order := agent.completed("")
	assert.Equal(t, []string{"first", "second"}, order)
}

// TestEventRejectedAfterRetryFor: an event that always fails is rejected
// once EventRetryFor has passed since its first failure, with a count of
// its retries on the metrics and the reason in the rejected file.
func TestEventRejectedAfterRetryFor(t *testing.T) {
	agent := newEventAgent(map[string]int{"doomed": -1})
	m := &countingMetrics{}
	f := newFixture(t, func(c *Config) {
		c.Agent = agent
		c.EventRetryFor = 50 * time.Millisecond
		c.Metrics = m
	})
	f.g.eventBackoffBase = time.Millisecond
	rec, err := f.g.Event(context.Background(), "s", "doomed")
	require.NoError(t, err)
	// The rejection is written, then counted: wait for both.
	eventually(t, "the event rejected and counted", func() bool { return f.g.spool.len() == 0 && m.get("rejected") > 0 })
	data, err := os.ReadFile(filepath.Join(f.home, RejectedFileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), rec.ID)
	assert.Contains(t, string(data), "--event-retry-for")
	assert.Equal(t, 1, m.get("rejected"))
	assert.Positive(t, m.get("retried"))
	n, _ := agent.completed(rec.ID)
	assert.Zero(t, n)
}

// countingMetrics counts the event metrics; safe for concurrent use.
type countingMetrics struct {
	nopMetrics
	mu     sync.Mutex
	counts map[string]int
}

func (m *countingMetrics) add(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[name]++
}

func (m *countingMetrics) get(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[name]
}

func (m *countingMetrics) EventRejected() { m.add("rejected") }
func (m *countingMetrics) EventRetried()  { m.add("retried") }

// the backoff schedule is 200ms doubling, capped at 30s.
func TestEventBackoffSchedule(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, eventBackoff(i+1), "after failure %d", i+1)
	}
	assert.Equal(t, eventBackoffMax, eventBackoff(64), "no overflow")
}

// TestEventRetriesThenRejected: an agent error retries with backoff, with
// the same event id, until EventRetryFor has passed since the first
// failure; then the event moves to the rejected file, so the session's
// next event runs.
func TestEventRetriesThenRejected(t *testing.T) {
	tries := make(chan string, 64)
	f := newFixture(t, func(c *Config) {
		c.EventRetryFor = 300 * time.Millisecond
		c.Agent = agent.Func(func(_ context.Context, t agent.Turn) (string, error) {
			tries <- t.EventID + " " + t.Text
			if t.Text == "poison" {
				return "", os.ErrInvalid
			}
			return "ok", nil
		})
	})
	bad, err := f.g.Event(context.Background(), "s", "poison")
	require.NoError(t, err)
	_, err = f.g.Event(context.Background(), "s", "next")
	require.NoError(t, err)
	n := 0
	for try := recv(t, tries); !strings.HasSuffix(try, " next"); try = recv(t, tries) {
		n++
		require.Equal(t, bad.ID+" poison", try, "try %d has the same event id", n)
	}
	require.GreaterOrEqual(t, n, 2, "retried before the rejection")
	eventually(t, "spool empty", func() bool { return f.g.spool.len() == 0 })
	data, err := os.ReadFile(filepath.Join(f.home, RejectedFileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), bad.ID)
	select {
	case extra := <-tries:
		require.Fail(t, fmt.Sprintf("ran again after the rejection: %s", extra))
	case <-time.After(50 * time.Millisecond):
	}
}

func TestEventBackoffIsCapped(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 64; n++ {
		d := eventBackoff(n)
		require.LessOrEqual(t, d, eventBackoffMax, "try %d", n)
		require.GreaterOrEqual(t, d, prev, "try %d", n)
		prev = d
	}
}
