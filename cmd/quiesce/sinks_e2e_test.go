package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/notify"
)

// deliveryBound bounds waiting for the webhook's redelivery (its backoff
// between rounds is capped at 30s).
const deliveryBound = 90 * time.Second

// hookReceiver is a loopback webhook receiver; status decides each
// answer (it may block), and the keys of 2xx answers are recorded.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]int
	hits atomic.Int64
}

func newHookReceiver(t *testing.T, status func(n int64) int) *hookReceiver {
	t.Helper()
	h := &hookReceiver{keys: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := status(h.hits.Add(1))
		if code >= 200 && code < 300 {
			h.mu.Lock()
			h.keys[r.Header.Get("Idempotency-Key")]++
			h.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

// accepted returns the distinct keys the receiver accepted, sorted.
func (h *hookReceiver) accepted() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k := range h.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// seedPending writes msgs to home's webhook pending file, as a gateway
// whose webhook was down at its last shutdown leaves it.
func seedPending(t *testing.T, home string, msgs []notify.Message) {
	t.Helper()
	w := notify.NewWebhook("http://127.0.0.1:1/unused", notify.WebhookOptions{PendingPath: filepath.Join(home, gateway.WebhookPendingFileName)})
	require.NoError(t, w.Keep(msgs))
}

// pendingMsgs returns the messages of the shutdowns in shutdownIDs with n
// pings each, broadcast first.
func pendingMsgs(shutdown string, n int) []notify.Message {
	msgs := []notify.Message{{At: time.Now().UTC(), Kind: notify.KindShutdownBroadcast, Target: notify.HomeTarget,
		Text: notify.BroadcastText(), ShutdownID: shutdown}}
	for i := range n {
		s := fmt.Sprintf("s%02d", i)
		msgs = append(msgs, notify.Message{At: time.Now().UTC(), Kind: notify.KindSessionInterrupted, Target: s,
			Text: notify.InterruptText(s), ShutdownID: shutdown})
	}
	return msgs
}

func msgIDs(msgs []notify.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID())
	}
	slices.Sort(out)
	return out
}

var webhookPendingRe = regexp.MustCompile(`(?m)^quiesce_webhook_pending (\S+)$`)

// TestWebhookReceiverBackMidRun: messages left pending by the last stop
// reach a receiver that is down when the gateway starts and comes back
// while it runs, without a restart; status and /metrics count them until
// then.
func TestWebhookReceiverBackMidRun(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	msgs := pendingMsgs("sd-old", 3)
	seedPending(t, home, msgs)
	var up atomic.Bool
	rcv := newHookReceiver(t, func(int64) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	p := startGateway(t, home, fakeProcRoot(t, "boot-hook", 100), "--notify-webhook", rcv.URL)

	eventually(t, deliveryBound, "a failed redelivery round", func() bool {
		return strings.Contains(p.stderr.String(), "webhook redelivery failed; retrying with backoff")
	})
	assert.Equal(t, float64(len(msgs)), p.status()["webhook_pending"], "status counts the pending messages")
	m := webhookPendingRe.FindStringSubmatch(p.call(http.MethodGet, "/metrics", "", "").raw)
	require.NotNil(t, m, "quiesce_webhook_pending is exported")
	assert.Equal(t, fmt.Sprint(len(msgs)), m[1])

	up.Store(true) // the receiver is back
	eventually(t, deliveryBound, "every pending message delivered", func() bool { return len(rcv.accepted()) == len(msgs) })
	assert.Equal(t, msgIDs(msgs), rcv.accepted(), "each with its Idempotency-Key")
	eventually(t, deliveryBound, "webhook_pending 0", func() bool { return p.status()["webhook_pending"] == 0.0 })
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestWebhookPendingSurvivesKillDuringRedelivery: a gateway killed (-9)
// while it redelivers loses no pending message the receiver did not
// acknowledge; the next start delivers the rest.
func TestWebhookPendingSurvivesKillDuringRedelivery(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	msgs := pendingMsgs("sd-old", 20)
	seedPending(t, home, msgs)
	hang := make(chan struct{})
	rcv := newHookReceiver(t, func(n int64) int {
		if n > 5 {
			<-hang // acknowledges nothing more: the kill comes first
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(hang) }) // runs before the receiver's Close
	procRoot := fakeProcRoot(t, "boot-hook-kill", 100)
	p := startGateway(t, home, procRoot, "--notify-webhook", rcv.URL)
	eventually(t, deliveryBound, "the redelivery under way", func() bool { return rcv.hits.Load() > 6 })
	p.signal(syscall.SIGKILL)
	p.wait()

	kept, err := notify.ReadOutbox(filepath.Join(home, gateway.WebhookPendingFileName))
	require.NoError(t, err)
	have := map[string]bool{}
	for _, m := range kept {
		have[m.ID()] = true
	}
	acked := rcv.accepted()
	for _, m := range msgs {
		if !slices.Contains(acked, m.ID()) {
			assert.True(t, have[m.ID()], "unacknowledged %s is still pending", m.ID())
		}
	}

	good := newHookReceiver(t, func(int64) int { return http.StatusOK })
	p = startGateway(t, home, procRoot, "--notify-webhook", good.URL)
	eventually(t, deliveryBound, "the rest delivered", func() bool { return p.status()["webhook_pending"] == 0.0 })
	all := map[string]bool{}
	for _, k := range append(acked, good.accepted()...) {
		all[k] = true
	}
	assert.Len(t, all, len(msgs), "every message reached a receiver")
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// flakyAgent is an http agent (--agent http) whose internal-event turns
// fail with 502 while down; it counts the event ids it completed.
type flakyAgent struct {
	*httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	done map[string]int
}

func newFlakyAgent(t *testing.T) *flakyAgent {
	t.Helper()
	a := &flakyAgent{done: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var turn struct{ Session, Text, EventID string }
		var raw map[string]string
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		turn.Session, turn.Text, turn.EventID = raw["session"], raw["text"], raw["event_id"]
		if turn.EventID != "" && a.down.Load() {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		if turn.EventID != "" {
			a.mu.Lock()
			a.done[turn.EventID]++
			a.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"reply":%q}`, "ok: "+turn.Text)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *flakyAgent) completed(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done[id]
}

// postEvent posts an internal event and returns its id.
func postEvent(t *testing.T, p *gatewayProc, session, text string) string {
	t.Helper()
	r := p.call(http.MethodPost, "/api/gateway/events", opsToken, fmt.Sprintf(`{"session":%q,"text":%q}`, session, text))
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	return r.body["event_id"].(string)
}

// rejectedHas reports whether home's rejected file holds event id.
func rejectedHas(t *testing.T, home, id string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, gateway.RejectedFileName))
	if os.IsNotExist(err) {
		return false
	}
	require.NoError(t, err)
	return strings.Contains(string(data), id)
}

// TestEventsRejectedThenReplayed: with a short --event-retry-for, an event
// whose upstream stays down is retried (counted) and then rejected;
// `quiesce events replay --url` moves it back and it runs once the
// upstream works. A local replay is refused while the gateway runs; on
// the stopped home it moves a rejected event back, and the next start
// runs it, once.
func TestEventsRejectedThenReplayed(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	procRoot := fakeProcRoot(t, "boot-replay", 100)
	agent := newFlakyAgent(t)
	agent.down.Store(true)
	args := []string{"--agent", "http", "--agent-url", agent.URL, "--event-retry-for", "300ms"}
	p := startGateway(t, home, procRoot, args...)

	id := postEvent(t, p, "s1", "job finished")
	eventually(t, deliveryBound, "the event rejected", func() bool { return rejectedHas(t, home, id) })
	// The rejection is written to the file first, then counted.
	rejectedTotal := regexp.MustCompile(`(?m)^quiesce_events_rejected_total 1$`)
	var metrics string
	eventually(t, deliveryBound, "the rejection counted", func() bool {
		metrics = p.call(http.MethodGet, "/metrics", "", "").raw
		return rejectedTotal.MatchString(metrics)
	})
	assert.Regexp(t, `(?m)^quiesce_events_retried_total [1-9]`, metrics)

	local, stderr, code := cli(t, nil, "events", "replay", "--home", home)
	assert.Equal(t, 1, code, "local replay on a live home: %s%s", local, stderr)
	assert.Contains(t, stderr, "is running on the home")
	assert.True(t, rejectedHas(t, home, id), "nothing changed")

	agent.down.Store(false)
	out, stderr, code := cli(t, []string{"QUIESCE_TOKEN=" + opsToken}, "events", "replay", "--url", p.url, "--json")
	require.Equal(t, 0, code, stderr)
	var res struct {
		OK       bool     `json:"ok"`
		Moved    int      `json:"moved"`
		EventIDs []string `json:"event_ids"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	assert.Equal(t, 1, res.Moved)
	assert.Equal(t, []string{id}, res.EventIDs)
	eventually(t, deliveryBound, "the replayed event ran", func() bool { return agent.completed(id) == 1 })
	assert.False(t, rejectedHas(t, home, id))

	// Rejected again, then replayed on the stopped home.
	agent.down.Store(true)
	id2 := postEvent(t, p, "s2", "another job")
	eventually(t, deliveryBound, "the second event rejected", func() bool { return rejectedHas(t, home, id2) })
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
	out, stderr, code = cli(t, nil, "events", "replay", "--home", home)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, id2)
	agent.down.Store(false)
	p = startGateway(t, home, procRoot, args...)
	eventually(t, deliveryBound, "the locally replayed event ran", func() bool { return agent.completed(id2) == 1 })
	eventually(t, deliveryBound, "spool empty", func() bool { return p.status()["spooled_events"] == 0.0 })
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
	assert.Equal(t, 1, agent.completed(id), "the first event ran exactly once")
	assert.Equal(t, 1, agent.completed(id2), "the second event ran exactly once")
}

// what the webhook could not deliver is kept in the home and delivered
// at the next start, with the same Idempotency-Key.
func TestE2EWebhookPendingRedeliveredAtNextStart(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	up := false
	var keys []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
	}))
	defer hook.Close()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-r4", 100)
	p := startGateway(t, home, proc, "--notify-timeout", "1s", "--notify-webhook", hook.URL)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
	b := outbox(t, home, notify.KindShutdownBroadcast)
	require.Len(t, b, 1)
	_, err := os.Stat(filepath.Join(home, "webhook.pending.jsonl"))
	require.NoError(t, err, "the undelivered broadcast is kept in the home")

	mu.Lock()
	up = true
	mu.Unlock()
	p2 := startGateway(t, home, proc, "--notify-webhook", hook.URL)
	eventually(t, 10*time.Second, "the kept broadcast is redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if k == b[0].ID() {
				return true
			}
		}
		return false
	})
	p2.signal(syscall.SIGTERM)
	require.Equal(t, 0, p2.wait())
}

// TestE2EWebhookPendingMax: --webhook-pending-max bounds what the webhook
// keeps for redelivery: with 1, a shutdown whose broadcast and interrupt
// ping both go undelivered keeps the broadcast only (the ping is dropped,
// still in the outbox; the file rewritten without it is still 0600), and
// the gateway exits 0.
func TestE2EWebhookPendingMax(t *testing.T) {
	t.Parallel()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // down for the whole test
	}))
	defer hook.Close()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-pending-max", 100), "--notify-webhook", hook.URL,
		"--webhook-pending-max", "1", "--notify-timeout", "1s", "--drain-timeout", "200ms", "--agent-work", "1m")
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	p.signal(syscall.SIGTERM)
	await(t, inflight)
	require.Equal(t, 0, p.wait())

	require.Len(t, outbox(t, home, notify.KindSessionInterrupted), 1, "the ping is in the outbox")
	pending := filepath.Join(home, gateway.WebhookPendingFileName)
	kept, err := notify.ReadOutbox(pending)
	require.NoError(t, err)
	require.Len(t, kept, 1, "--webhook-pending-max 1 keeps one message")
	assert.Equal(t, notify.KindShutdownBroadcast, kept[0].Kind, "the latest broadcast is never dropped")
	fi, err := os.Stat(pending)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "rewritten within its limit, still 0600")
}
