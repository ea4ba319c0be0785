package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/fakeproc"
)

// Soak sizes. make test runs the defaults; make soak raises them through
// QUIESCE_SOAK_KILLS (TestSoakKill9) and QUIESCE_SOAK_SCALE
// (TestSoakI1Monitor: turns, drain/cancel pairs and events multiply).
const (
	defaultSoakKills = 10
	i1TurnsPerScale  = 2000
	i1PairsPerScale  = 100 // drain+cancel pairs: 2 flips each
	i1EventsPerScale = 50
)

// soakEventSessions is how many sessions the kill soak's events go to.
const soakEventSessions = 4

// soakLife is what the kill soak knows of one life of the gateway.
type soakLife struct {
	killed  bool            // ended by kill -9 (else it exited 0 after a shutdown)
	pending map[string]bool // events pending in the spool once it had ended
	acked   []string        // event ids it answered 202 for
}

// agentRun is one line of the kill soak's agent log.
type agentRun struct {
	kind     string // "start" or "done"
	id       string // QUIESCE_EVENT_ID
	life     int    // the life of the gateway that ran it
	postLife int    // the life the event was posted in (from its text); 0 when unknown
}

// TestSoakKill9 kills the real binary with SIGKILL at random moments
// under load, QUIESCE_SOAK_KILLS times (default 10), on one home and one
// fake proc root (the epoch stays: a supervisor respawn). Each life
// sends user turns, posts internal events (those answered 202 are
// acknowledged), flips drain/cancel through the API and by replacing or
// removing the marker file directly, and sometimes has a shutdown in
// progress when the kill lands. Between lives it checks every file of the
// home (I7: the atomically replaced files are never torn; the logs have
// at most a torn last line), that the next start removes the temp files
// the killed writers left, and that the start state follows the marker
// (ours and fresh: draining; none: running). At the end it checks I8 on
// the agent's own log (see checkI8).
func TestSoakKill9(t *testing.T) {
	t.Parallel()
	needBinary(t)
	kills := envCount(t, "QUIESCE_SOAK_KILLS", defaultSoakKills)
	home := newHome(t)
	const bootID, pid1Start = "boot-soak", 100
	epoch := fmt.Sprintf("%s:%d", bootID, pid1Start)
	proc := fakeProcRoot(t, bootID, pid1Start)
	logPath := filepath.Join(t.TempDir(), "agent.log")
	client := soakClient(t, 4)

	// The agent: a system turn (QUIESCE_EVENT_ID set) appends "start" and,
	// 0-50ms later, "done" to the log, each with one echo >> (an O_APPEND
	// write of a short line is atomic), tagged with the life that runs it
	// (baked into the command) and the event's text, which names the life
	// it was posted in. So a line written late by an agent of a killed life
	// still counts for that life. An agent started just before a kill may
	// find its stdin closed before the gateway wrote the text (the copying
	// goroutine died with it): it logs "-", the posting life unknown. User
	// turns just reply.
	agentArgs := func(life int) []string {
		script := fmt.Sprintf(`read -r msg
if [ -n "$QUIESCE_EVENT_ID" ]; then
  echo "start $QUIESCE_EVENT_ID %[1]d ${msg:--}" >> '%[2]s'
  sleep 0.0$(( $$ %% 6 ))
  echo "done $QUIESCE_EVENT_ID %[1]d ${msg:--}" >> '%[2]s'
fi
echo "re: $msg"`, life, logPath)
		return []string{"--agent", "exec", "--agent-cmd", script, "--drain-timeout", "5s", "--notify-timeout", "1s"}
	}

	var (
		lives       = []soakLife{{pending: map[string]bool{}}} // lives[0]: before the first start
		turnsOK     atomic.Int64
		turnsRefuse atomic.Int64
		turnsOther  atomic.Int64
		postsLost   atomic.Int64 // event posts without an answer (the kill cut them off)
		killed      int          // lives ended by SIGKILL
		killedInSD  int          // ... while a shutdown was in progress (its 202 had arrived)
		cleanExits  int          // lives that exited 0 after a requested shutdown, before the kill
		leftTemps   int          // temp files a killed writer left, removed by the next start
		drainStarts int          // starts that came up draining
	)

	// start starts life and checks the start: the killed writers' temp
	// files are gone, and the state follows the marker the last life left.
	start := func(life int) *gatewayProc {
		t.Helper()
		// A supervisor respawn: the same boot id and PID 1 start time.
		require.NoError(t, fakeproc.Write(proc, bootID, pid1Start))
		before := homeTemps(t, home)
		marker := readMarker(t, home) // fails on a torn marker (I7)
		p := startGateway(t, home, proc, agentArgs(life)...)
		for _, name := range before {
			if _, err := os.Lstat(filepath.Join(home, name)); err != nil {
				leftTemps++
				continue
			}
			assert.Fail(t, fmt.Sprintf("life %d: temp file %s left by the killed gateway survived the start", life, name))
		}
		st := p.status()
		if marker != nil {
			drainStarts++
			assert.Equalf(t, "draining", st["state"], "life %d: a fresh marker of our epoch drains from the start: %v", life, marker)
			if d, ok := st["drain"].(map[string]any); assert.Truef(t, ok, "life %d: status drain: %v", life, st) {
				assert.Equalf(t, "active", d["status"], "life %d", life)
			}
		} else {
			assert.Equalf(t, "running", st["state"], "life %d: no marker, running", life)
			assert.Nilf(t, st["drain"], "life %d", life)
		}
		assert.Equal(t, epoch, st["epoch"])
		return p
	}

	// Lives until kills of them ended by SIGKILL; a life whose shutdown
	// completed before its kill landed does not count. Each life is a kill
	// with a chance of at least 3/4, so the cap is never reached in
	// practice; it keeps the loop bounded.
	life := 0
	for killed < kills {
		life++
		require.LessOrEqualf(t, life, 3*kills+10, "only %d of %d lives ended by a kill", killed, life-1)
		p := start(life)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		call := func(method, path, body string) (response, error) {
			return doCallWith(client, p.url, method, path, opsToken, body)
		}
		alive := func() bool {
			select {
			case <-stop:
				return false
			case <-p.done:
				return false
			default:
				return true
			}
		}
		pause := func(max time.Duration) {
			d := time.Millisecond
			if max > 0 {
				d += rand.N(max)
			}
			select {
			case <-stop:
			case <-p.done:
			case <-time.After(d):
			}
		}
		var ackMu sync.Mutex
		var acked []string
		// Users: two sessions, back to back.
		for u := range 2 {
			wg.Go(func() {
				for n := 0; alive(); n++ {
					r, err := call(http.MethodPost, fmt.Sprintf("/v1/sessions/u%d/messages", u), fmt.Sprintf(`{"text":"%d-%d"}`, life, n))
					switch {
					case err != nil:
					case r.code == http.StatusOK:
						turnsOK.Add(1)
					case r.code == http.StatusServiceUnavailable:
						turnsRefuse.Add(1)
					default:
						turnsOther.Add(1)
					}
					pause(5 * time.Millisecond)
				}
			})
		}
		// Events: the text names the life it was posted in. At most 24
		// pending at once, so a long run of draining lives stays bounded.
		wg.Go(func() {
			for n := 0; alive(); n++ {
				if r, err := call(http.MethodGet, "/api/gateway/status", ""); err != nil || r.body["spooled_events"] == nil ||
					r.body["spooled_events"].(float64) >= 24 {
					pause(10 * time.Millisecond)
					continue
				}
				r, err := call(http.MethodPost, "/api/gateway/events",
					fmt.Sprintf(`{"session":"ev%d","text":"%d-%d"}`, n%soakEventSessions, life, n))
				switch {
				case err != nil:
					postsLost.Add(1)
				case r.code == http.StatusAccepted:
					id, _ := r.body["event_id"].(string)
					if assert.NotEmptyf(t, id, "202 without an event id: %s", r.raw) {
						ackMu.Lock()
						acked = append(acked, id)
						ackMu.Unlock()
					}
				default:
					// 503 spool_unavailable once shutting down: not accepted.
				}
				pause(10 * time.Millisecond)
			}
		})
		// Operator: drain and cancel through the API, or replace and remove
		// the marker file directly, like an outside tool.
		wg.Go(func() {
			for n := 0; alive(); n++ {
				pause(30 * time.Millisecond)
				switch rand.N(4) {
				case 0:
					_, _ = call(http.MethodPost, "/api/gateway/drain", `{"action":"drain"}`)
				case 1:
					_, _ = call(http.MethodPost, "/api/gateway/drain", `{"action":"cancel"}`)
				case 2:
					m, _ := json.Marshal(map[string]any{"action": "drain", "requested_at": time.Now().UTC().Format(time.RFC3339Nano),
						"principal": "soak", "epoch": epoch, "suppress_notification": false, "request_id": fmt.Sprintf("soak-%d-%d", life, n)})
					assert.NoError(t, writeMarkerFile(home, m))
				case 3:
					if err := os.Remove(filepath.Join(home, ".drain_request.json")); err != nil {
						assert.ErrorIs(t, err, os.ErrNotExist)
					}
				}
			}
		})
		// Sometimes a shutdown (not forced) is in progress when the kill
		// lands; sometimes it completes first and the life exits 0.
		// The shutdown comes 0-40ms before the kill: the sequence waits for
		// turns in flight (up to 50ms), so either may come first.
		killAt := rand.N(300 * time.Millisecond)
		var inShutdown atomic.Bool
		if rand.N(4) == 0 {
			wg.Go(func() {
				select {
				case <-stop:
					return
				case <-time.After(max(0, killAt-rand.N(40*time.Millisecond))):
				}
				if !alive() {
					return
				}
				if r, err := call(http.MethodPost, "/api/gateway/shutdown", `{"force":false}`); err == nil && r.code == http.StatusAccepted {
					inShutdown.Store(true)
				}
			})
		}
		select {
		case <-time.After(killAt):
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				require.ErrorIs(t, err, os.ErrProcessDone)
			}
		case <-p.done:
		}
		code := p.wait()
		close(stop)
		waitGroup(t, &wg, exitTimeout, fmt.Sprintf("life %d: the load goroutines", life))
		client.CloseIdleConnections()
		// -1: killed by a signal; 0: a shutdown completed before the kill.
		require.Containsf(t, []int{-1, 0}, code, "life %d exit code; stderr:\n%s", life, p.stderr.String())
		if code == 0 {
			cleanExits++
		} else {
			killed++
			if inShutdown.Load() {
				killedInSD++
			}
		}
		checkHomeFiles(t, home, life)
		lives = append(lives, soakLife{killed: code != 0, pending: spoolPending(t, home), acked: acked})
	}

	// The last life: cancel the drain, let every event complete, SIGTERM.
	last := life + 1
	p := start(last)
	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, "running", r.body["state"], r.raw)
	eventually(t, 2*time.Minute, "every spooled event completed in the last life", func() bool {
		return p.status()["spooled_events"] == float64(0)
	})
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait(), "the last life shuts down cleanly")
	checkHomeFiles(t, home, last)
	lives = append(lives, soakLife{pending: spoolPending(t, home)})
	require.Empty(t, lives[last].pending, "nothing pending after the last life")

	// One more start: nothing is pending, so nothing may run. A sentinel
	// event per session proves it: events of a session run in spool order,
	// so anything that was still to run would run before the sentinel.
	final := last + 1
	p = start(final)
	assert.Equal(t, float64(0), p.status()["spooled_events"], "a completed event never runs again")
	var sentinels []string
	for s := range soakEventSessions {
		r := p.call(http.MethodPost, "/api/gateway/events", opsToken, fmt.Sprintf(`{"session":"ev%d","text":"%d-sentinel"}`, s, final))
		require.Equal(t, http.StatusAccepted, r.code, r.raw)
		sentinels = append(sentinels, r.body["event_id"].(string))
	}
	eventually(t, 30*time.Second, "the sentinel events completed", func() bool {
		return p.status()["spooled_events"] == float64(0)
	})
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
	lives = append(lives, soakLife{pending: spoolPending(t, home), acked: sentinels})

	runs := readAgentLog(t, logPath)
	var finalStarts []string
	for _, r := range runs {
		if r.kind == "start" && r.life == final {
			finalStarts = append(finalStarts, r.id)
		}
	}
	assert.ElementsMatch(t, sentinels, finalStarts, "the final restart ran the sentinels and nothing else")

	stats := checkI8(t, lives, runs)
	acks := 0
	for _, l := range lives {
		acks += len(l.acked)
	}
	t.Logf("soak: %d lives: %d killed by SIGKILL (%d during a shutdown), %d exited 0 after a shutdown, "+
		"then a clean last life and a final restart; %d starts came up draining",
		len(lives)-1, killed, killedInSD, cleanExits, drainStarts)
	t.Logf("soak: %d events acknowledged (%d posts cut off unanswered); %d system turns started: "+
		"%d first runs in a later life than posted, %d re-runs after a kill mid-turn, "+
		"%d re-runs after a kill between the end of the turn and its record",
		acks, postsLost.Load(), stats.starts, stats.waited, stats.resumed, stats.rerunsAfterDone)
	t.Logf("soak: user turns %d ok, %d refused (503), %d other; %d leftover temp files removed at start",
		turnsOK.Load(), turnsRefuse.Load(), turnsOther.Load(), leftTemps)
	assert.Zero(t, turnsOther.Load(), "user turns are answered 200 or 503 (one client per session)")
}

// i8Stats are the figures checkI8 reports.
type i8Stats struct {
	starts          int // system turns started
	waited          int // first starts in a later life than the event was posted in
	resumed         int // starts of an event a kill cut off mid-turn in an earlier life
	rerunsAfterDone int // starts of an event whose turn had completed in an earlier life
}

// checkI8 checks I8 on the agent's log, given what each life acknowledged
// and what its spool held pending once it had ended (lives[0] is before
// the first start; lives[L] ended by kill -9 when killed). The rules:
//
//  1. Every acknowledged event has a "done" line: it ran to completion.
//  2. No acknowledged event leaves the spool before it completed: after
//     each life from the one that acknowledged it on, it is pending or it
//     has a "done" line in that life or an earlier one.
//  3. An event starts at most once per life (the agent never fails, so
//     there are no retries within a life), in the life it was posted in or
//     a later one; in a later life only if it was pending in the spool that
//     life started from (the previous life's, read after it had ended).
//  4. A "done" line and its event still pending after that life had ended
//     means the process died between the end of the turn and the record of
//     that end: allowed only when that life was killed (a clean shutdown
//     records every completion). Only then may the event run again.
//
// So a run after a "done" ("re-run after done") needs a kill that landed
// between that done and its record, and each such kill allows at most one
// extra run: an event has at most one re-run per killed life from its
// first done on. Rule 3 makes that exact; it is also checked directly.
func checkI8(t *testing.T, lives []soakLife, runs []agentRun) i8Stats {
	t.Helper()
	var st i8Stats
	type key struct {
		id   string
		life int
	}
	started := map[key]bool{}
	firstDone, firstStart := map[string]int{}, map[string]int{}
	for _, r := range runs {
		k := key{r.id, r.life}
		require.Truef(t, r.life >= 1 && r.life < len(lives), "log line of life %d: %+v", r.life, r)
		switch r.kind {
		case "start":
			st.starts++
			assert.Falsef(t, started[k], "I8: event %s started twice in life %d", r.id, r.life)
			started[k] = true
			fs, startedBefore := firstStart[r.id]
			if !startedBefore {
				firstStart[r.id] = r.life
			}
			if r.postLife == 0 {
				// The text never reached the agent (it started just
				// before a kill). The event was either pending in the
				// spool this life started from, or new in this life.
				r.postLife = r.life
				if lives[r.life-1].pending[r.id] {
					r.postLife = r.life - 1
				} else {
					assert.Falsef(t, startedBefore, "I8: event %s started in life %d but was not pending in the spool that life started from", r.id, r.life)
				}
			}
			assert.LessOrEqualf(t, r.postLife, r.life, "event %s ran in life %d before it was posted in life %d", r.id, r.life, r.postLife)
			if r.postLife < r.life {
				assert.Truef(t, lives[r.life-1].pending[r.id],
					"I8: event %s started in life %d but was not pending in the spool that life started from", r.id, r.life)
				if fd, ok := firstDone[r.id]; ok && fd < r.life {
					st.rerunsAfterDone++
				} else if startedBefore && fs < r.life {
					st.resumed++
				} else {
					st.waited++
				}
			}
		case "done":
			assert.Truef(t, started[k], "event %s done in life %d without a start in that life", r.id, r.life)
			if _, ok := firstDone[r.id]; !ok {
				firstDone[r.id] = r.life
			}
			if lives[r.life].pending[r.id] {
				assert.Truef(t, lives[r.life].killed,
					"I8: event %s completed in life %d, which shut down cleanly, yet is still pending after it", r.id, r.life)
			}
		}
	}
	for life, l := range lives {
		for _, id := range l.acked {
			fd, ok := firstDone[id]
			if !assert.Truef(t, ok, "I8: event %s acknowledged in life %d never completed", id, life) {
				continue
			}
			for after := life; after < len(lives); after++ {
				if !lives[after].pending[id] {
					assert.LessOrEqualf(t, fd, after, "I8: event %s left the spool in life %d before it completed (life %d)", id, after, fd)
					break
				}
			}
		}
	}
	// Rule 4, directly: re-runs after the first done, against the kills
	// that could have caused them.
	for id, fd := range firstDone {
		reruns, killsSince := 0, 0
		for life := fd + 1; life < len(lives); life++ {
			if started[key{id, life}] {
				reruns++
			}
		}
		for life := fd; life < len(lives)-1; life++ {
			if lives[life].killed {
				killsSince++
			}
		}
		assert.LessOrEqualf(t, reruns, killsSince, "I8: event %s ran %d times after its first done (life %d), with %d kills since", id, reruns, fd, killsSince)
	}
	return st
}

// readAgentLog parses the kill soak's agent log.
func readAgentLog(t *testing.T, path string) []agentRun {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []agentRun
	all := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, line := range all {
		f := strings.Fields(line)
		require.Lenf(t, f, 4, "agent log line %d: %q; lines around it:\n%s", i+1, line,
			strings.Join(all[max(0, i-8):min(len(all), i+8)], "\n"))
		require.Containsf(t, []string{"start", "done"}, f[0], "agent log line %d: %q", i+1, line)
		life, err := strconv.Atoi(f[2])
		require.NoErrorf(t, err, "agent log line %d: %q", i+1, line)
		postLife := 0 // "-": the text never arrived (see agentArgs)
		if f[3] != "-" {
			post, _, _ := strings.Cut(f[3], "-")
			postLife, err = strconv.Atoi(post)
			require.NoErrorf(t, err, "agent log line %d: %q", i+1, line)
		}
		out = append(out, agentRun{kind: f[0], id: f[1], life: life, postLife: postLife})
	}
	return out
}

// homeTemps returns the names of the temp files in home ("*.tmp-*").
func homeTemps(t *testing.T, home string) []string {
	t.Helper()
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkHomeFiles checks, while no gateway runs, that every file of home
// parses: the atomically replaced ones (state, marker) completely (I7:
// never torn, even under kill -9), the append-only ones (outbox,
// rejected events, spool) line by line, where only the last line may be
// torn (unterminated).
func checkHomeFiles(t *testing.T, home string, life int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, "gateway_state.json"))
	if assert.NoErrorf(t, err, "life %d: the state file", life) {
		var st map[string]any
		if assert.NoErrorf(t, json.Unmarshal(data, &st), "life %d: gateway_state.json torn (I7): %q", life, data) {
			assert.Containsf(t, []any{"running", "draining", "shutting_down", "stopped"}, st["gateway_state"], "life %d: %s", life, data)
		}
	}
	readMarker(t, home) // absent, or valid JSON (I7)
	for _, name := range []string{"outbox.jsonl", "events.spool.rejected.jsonl", "events.spool.jsonl"} {
		complete, torn := jsonlLines(t, filepath.Join(home, name))
		for i, line := range complete {
			assert.Truef(t, json.Valid(line), "life %d: %s line %d is not JSON: %q", life, name, i+1, line)
		}
		if torn != nil {
			t.Logf("life %d: %s ends in a torn line (%d bytes), cut at the next start", life, name, len(torn))
		}
	}
}

// jsonlLines returns the complete (newline-terminated) lines of path and
// its torn last line, if any; a missing file has none.
func jsonlLines(t *testing.T, path string) (complete [][]byte, torn []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	require.NoError(t, err)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return complete, data
		}
		if line := bytes.TrimSpace(data[:i]); len(line) > 0 {
			complete = append(complete, line)
		}
		data = data[i+1:]
	}
	return complete, nil
}

// spoolPending replays events.spool.jsonl as the next gateway will: the
// events of its complete lines minus those with a completion record.
func spoolPending(t *testing.T, home string) map[string]bool {
	t.Helper()
	complete, _ := jsonlLines(t, filepath.Join(home, "events.spool.jsonl"))
	pending := map[string]bool{}
	for _, line := range complete {
		var rec struct{ ID, Session, Done string }
		require.NoErrorf(t, json.Unmarshal(line, &rec), "spool line %q", line)
		if rec.Done != "" {
			delete(pending, rec.Done)
			continue
		}
		require.NotEmptyf(t, rec.ID, "spool line %q", line)
		pending[rec.ID] = true
	}
	return pending
}

// waitGroup waits for wg, failing after bound.
func waitGroup(t *testing.T, wg *sync.WaitGroup, bound time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(bound):
		require.Fail(t, fmt.Sprintf("%s did not finish within %v", what, bound))
	}
}

// soakClient returns an HTTP client with its own pool of up to idle
// connections per host, closed when the test ends.
func soakClient(t *testing.T, idle int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = idle
	c := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// i1Window is one drain as the outside monitor saw it: from its 200 to
// the moment the next cancel was sent. An announced drain (announce) also
// has its announce window, from the moment it was sent to its 200.
type i1Window struct {
	sent, drained, cancelSent time.Time
	announce                  bool
}

// i1Announce is the announce window of every other drain of the I1
// monitor (announce_seconds).
const i1Announce = "0.02"

// i1Turn is one turn as a client saw it.
type i1Turn struct {
	sent, answered time.Time
	code           int
}

// TestSoakI1Monitor: one gateway, 32 clients sending turns (each on its
// own session), an operator flipping drain/cancel through the API (every
// other drain announced for 20 ms first), events posted meanwhile, and an
// outside I1 monitor: a turn sent after a drain's 200 and answered before
// the next cancel was even sent lies wholly inside the drain, so it must
// be refused (503), never run. (A turn sent before the cancel but
// answered after it may legitimately have reached the gate after the
// cancel: it proves nothing either way.) Turns wholly inside an announce
// window (sent after the drain was sent, answered before its 200) are
// counted apart: accepting them is the point of the window, and some are.
// At the end nothing hangs, every event completed, the gateway's open fds
// and goroutines are back to their idle baseline, and it exits 0.
func TestSoakI1Monitor(t *testing.T) {
	t.Parallel()
	scale := envCount(t, "QUIESCE_SOAK_SCALE", 1)
	turns, pairs, events := i1TurnsPerScale*scale, i1PairsPerScale*scale, i1EventsPerScale*scale
	const clients = 32
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-i1", 100), "--agent-work", "2ms")
	pid := p.cmd.Process.Pid
	client := soakClient(t, clients+4)
	call := func(method, path, body string) (response, error) {
		return doCallWith(client, p.url, method, path, opsToken, body)
	}
	baseFDs := fdCount(t, pid)
	baseG, haveG := goroutines(t, p.url)

	var (
		next    atomic.Int64
		mu      sync.Mutex
		results []i1Turn
		windows []i1Window
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			var mine []i1Turn
			defer func() {
				mu.Lock()
				results = append(results, mine...)
				mu.Unlock()
			}()
			for n := next.Add(1); n <= int64(turns); n = next.Add(1) {
				sent := time.Now()
				r, err := call(http.MethodPost, fmt.Sprintf("/v1/sessions/c%d/messages", c), fmt.Sprintf(`{"text":"t%d"}`, n))
				answered := time.Now()
				if !assert.NoError(t, err) {
					return
				}
				mine = append(mine, i1Turn{sent: sent, answered: answered, code: r.code})
				if r.code == http.StatusServiceUnavailable {
					time.Sleep(time.Millisecond) // a refused turn is fast: back off a little
				}
			}
		})
	}
	wg.Go(func() { // the operator
		for i := range pairs {
			time.Sleep(rand.N(3 * time.Millisecond))
			body, announce := `{"action":"drain"}`, i%2 == 1
			if announce {
				body = `{"action":"drain","announce_seconds":` + i1Announce + `}`
			}
			sent := time.Now()
			r, err := call(http.MethodPost, "/api/gateway/drain", body)
			drained := time.Now()
			if !assert.NoError(t, err) || !assert.Equal(t, http.StatusOK, r.code, r.raw) {
				return
			}
			time.Sleep(rand.N(4*time.Millisecond) + 2*time.Millisecond)
			cancelSent := time.Now()
			r, err = call(http.MethodPost, "/api/gateway/drain", `{"action":"cancel"}`)
			if !assert.NoError(t, err) || !assert.Equal(t, http.StatusOK, r.code, r.raw) {
				return
			}
			mu.Lock()
			windows = append(windows, i1Window{sent: sent, drained: drained, cancelSent: cancelSent, announce: announce})
			mu.Unlock()
		}
	})
	wg.Go(func() { // internal events: never refused, whatever the state
		for n := range events {
			r, err := call(http.MethodPost, "/api/gateway/events", fmt.Sprintf(`{"session":"sys%d","text":"e%d"}`, n%4, n))
			if !assert.NoError(t, err) || !assert.Equal(t, http.StatusAccepted, r.code, r.raw) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	waitGroup(t, &wg, 5*time.Minute, "clients, operator and event poster")
	require.Len(t, results, turns, "every turn was answered")
	require.Len(t, windows, pairs)

	// windows are in order and disjoint (one operator, one flip at a time).
	sort.Slice(windows, func(i, j int) bool { return windows[i].drained.Before(windows[j].drained) })
	codes, announced := map[int]int{}, map[int]int{}
	inside := 0
	for _, tr := range results {
		codes[tr.code]++
		// The last drain whose 200 arrived before the turn was sent.
		i := sort.Search(len(windows), func(i int) bool { return !windows[i].drained.Before(tr.sent) }) - 1
		if n := i + 1; n < len(windows) && windows[n].announce && !tr.sent.Before(windows[n].sent) && tr.answered.Before(windows[n].drained) {
			announced[tr.code]++ // wholly inside drain n's announce window: either answer is right
			continue
		}
		if i < 0 || !tr.answered.Before(windows[i].cancelSent) {
			continue
		}
		inside++
		assert.Equalf(t, http.StatusServiceUnavailable, tr.code,
			"I1: a turn sent %v after drain %d's 200 and answered %v before its cancel was sent was not refused",
			tr.sent.Sub(windows[i].drained), i, windows[i].cancelSent.Sub(tr.answered))
	}
	for code := range codes {
		assert.Containsf(t, []int{http.StatusOK, http.StatusServiceUnavailable}, code, "turn answers: %v", codes)
	}
	assert.Positive(t, inside, "the monitor saw turns inside drain windows (else it checked nothing)")
	assert.Positive(t, codes[http.StatusOK], "some turns ran")
	assert.Positive(t, announced[http.StatusOK], "turns were accepted during announce windows (the gate stayed open)")
	t.Logf("I1 monitor: %d turns (%d ok, %d refused), %d drain/cancel flips (%d announced), %d events; "+
		"%d turns wholly inside a drain window after its answer, all refused; "+
		"%d wholly inside an announce window before the answer (%d accepted, %d refused)",
		turns, codes[http.StatusOK], codes[http.StatusServiceUnavailable], 2*pairs, pairs/2, events, inside,
		announced[http.StatusOK]+announced[http.StatusServiceUnavailable], announced[http.StatusOK], announced[http.StatusServiceUnavailable])

	// Status through the test's own client, so that closing its pool
	// below leaves the gateway no connection of this test.
	status := func() map[string]any {
		r, err := call(http.MethodGet, "/api/gateway/status", "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		return r.body
	}
	assert.Equal(t, "running", status()["state"])
	eventually(t, time.Minute, "every event completed", func() bool {
		st := status()
		return st["spooled_events"] == float64(0) && st["active_agents"] == float64(0)
	})
	// Idle again: the clients' connections closed, the fds and goroutines
	// come back to the baseline (a little slack for the runtime).
	const fdSlack, goroutineSlack = 2, 4
	client.CloseIdleConnections()
	var fds int
	eventually(t, 10*time.Second, fmt.Sprintf("open fds back to the idle baseline %d (+%d)", baseFDs, fdSlack), func() bool {
		fds = fdCount(t, pid)
		return fds <= baseFDs+fdSlack
	})
	t.Logf("open fds: %d idle before, %d idle after", baseFDs, fds)
	if haveG {
		var g int
		eventually(t, 10*time.Second, fmt.Sprintf("goroutines back to the idle baseline %d (+%d)", baseG, goroutineSlack), func() bool {
			client.CloseIdleConnections()
			g, _ = goroutines(t, p.url)
			return g <= baseG+goroutineSlack
		})
		t.Logf("goroutines: %d idle before, %d idle after", baseG, g)
	} else {
		t.Log("GET /metrics has no go_goroutines (the Go collector is not registered): goroutine baseline not checked")
	}
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait(), "a clean shutdown")
}

// fdCount returns how many fds process pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	return len(entries)
}

// goroutines returns go_goroutines from the gateway's /metrics, and
// whether it is there. It uses a fresh connection it closes at once, so
// the count includes one serving goroutine, as every call does.
func goroutines(t *testing.T, base string) (int, bool) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := doCallWith(c, base, http.MethodGet, "/metrics", "", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code)
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err, sc.Text())
			return int(n), true
		}
	}
	return 0, false
}
