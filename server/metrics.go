package server

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/internal/buildinfo"
)

// TurnResults lists the values of the result label of quiesce_turns_total.
var TurnResults = []string{"ok", "error", "refused", "busy", "interrupted"}

// MarkerOutcomes lists the values of the outcome label of
// quiesce_marker_reads_total.
var MarkerOutcomes = []string{"absent", "active", "contentless", "stale", "expired"}

// TokensReloadResults lists the values of the result label of
// quiesce_tokens_reload_total.
var TokensReloadResults = []string{"ok", "error"}

// Metrics is the Prometheus side of a gateway, on its own registry, with
// the standard go_* and process_* collectors and:
//
//	quiesce_build_info{version,revision,goversion} 1, labelled with what built the binary
//	quiesce_state{state}                  1 for the current lifecycle state, 0 for the others
//	quiesce_ready                         1 while /readyz answers 200 (running, no drain being announced), else 0
//	quiesce_turns_in_flight               turns accepted and not yet finished
//	quiesce_drain_expires_in_seconds      seconds until the active drain request expires (absent without one)
//	quiesce_drain_persisted               1 while the active drain's marker is written, 0 while it is held in memory only (absent without one)
//	quiesce_turns_total{result}           turns by result (see TurnResults)
//	quiesce_turn_duration_seconds{result} how long accepted turns ran, by result (see DurationResults)
//	quiesce_state_since_seconds           unix time the current state began
//	quiesce_agent_failures_total          turns the agent failed by itself
//	quiesce_drain_reaction_seconds        time from a drain request to the gate closing
//	quiesce_http_requests_total{route,code} HTTP requests by route template and status
//	quiesce_events_rejected_total         internal events moved to the rejected file
//	quiesce_events_retried_total          failed tries of internal events that are tried again
//	quiesce_spooled_events                internal events in the spool
//	quiesce_webhook_pending               notifications the webhook keeps for redelivery
//	quiesce_notifications_total{sink,result} notification outcomes (delivered, retried, undelivered, failed, dropped)
//	quiesce_marker_reads_total{outcome}   reconciles' marker reads by outcome (see MarkerOutcomes)
//	quiesce_tokens_reload_total{result}   SIGHUP reloads of the tokens file by result (see TokensReloadResults)
//	quiesce_tokens_last_reload_successful 1 when the last load of the tokens file (start or reload) succeeded, else 0
//	quiesce_tokens_last_reload_success_timestamp_seconds  when the tokens file was last loaded successfully
//
// State, its start, in-flight count, spool depth, webhook pending, drain
// expiry and agent failures are read from the Gateway at scrape time, so
// they are never stale. Metrics implements
// gateway.Metrics; all methods are safe for concurrent use. Counting is
// off the hot path's locks and allocations: each label combination's
// counter is resolved once and then found with an atomic load and a map
// read (TurnEnded and an HTTP request's count allocate nothing). Create it
// with NewMetrics.
type Metrics struct {
	reg         *prometheus.Registry
	turns       *counterCache[string]
	durations   *observerCache
	reaction    prometheus.Histogram
	requests    *counterCache[requestKey]
	rejected    prometheus.Counter
	retried     prometheus.Counter
	notified    *counterCache[notifyKey]
	markerReads *counterCache[string]
	reloads     *counterCache[string]
	reloadOK    prometheus.Gauge                  // quiesce_tokens_last_reload_successful
	reloadAt    prometheus.Gauge                  // quiesce_tokens_last_reload_success_timestamp_seconds
	status      atomic.Pointer[func() api.Status] // set once by the Server, read by every scrape
	now         func() time.Time                  // clock of quiesce_drain_expires_in_seconds
}

var _ gateway.Metrics = (*Metrics)(nil)

var (
	stateDesc = prometheus.NewDesc("quiesce_state", "1 for the current lifecycle state, 0 for the others.", []string{"state"}, nil)
	readyDesc = prometheus.NewDesc("quiesce_ready",
		"1 while /readyz answers 200: running, and no drain is being announced; 0 otherwise.", nil, nil)
	inFlightDesc    = prometheus.NewDesc("quiesce_turns_in_flight", "Turns accepted and not yet finished.", nil, nil)
	spoolDesc       = prometheus.NewDesc("quiesce_spooled_events", "Internal events in the spool: waiting, running or retrying.", nil, nil)
	webhookPendDesc = prometheus.NewDesc("quiesce_webhook_pending",
		"Notifications the webhook could not deliver yet, kept in webhook.pending.jsonl and retried while running.", nil, nil)
	drainExpiryDesc = prometheus.NewDesc("quiesce_drain_expires_in_seconds",
		"Seconds until the active drain request expires and the gateway resumes by itself; absent while no drain request with a known expiry drains it.", nil, nil)
	drainPersistedDesc = prometheus.NewDesc("quiesce_drain_persisted",
		"1 while the active drain request is written in the drain marker, 0 while the marker could not be written and the drain is held in memory only (a restart forgets it); absent without an active drain request.", nil, nil)
	stateSinceDesc = prometheus.NewDesc("quiesce_state_since_seconds",
		"Unix time at which the gateway entered its current lifecycle state.", nil, nil)
	agentFailuresDesc = prometheus.NewDesc("quiesce_agent_failures_total",
		"Turns the agent failed by itself (an error, a non-zero exit, an upstream error answer, a panic); /readyz stays 200.", nil, nil)
)

// DurationResults lists the values of the result label of
// quiesce_turn_duration_seconds: the ends of a turn that ran.
var DurationResults = []string{"ok", "error", "interrupted"}

// requestKey labels one child of quiesce_http_requests_total.
type requestKey struct {
	route string
	code  int
}

// notifyKey labels one child of quiesce_notifications_total.
type notifyKey struct{ sink, result string }

// NewMetrics returns Metrics with every series registered and every label
// value of quiesce_state, quiesce_turns_total and
// quiesce_marker_reads_total present from the start.
func NewMetrics() *Metrics {
	turns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quiesce_turns_total", Help: "Turns by result: ok, error, refused, busy, interrupted.",
	}, []string{"result"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quiesce_http_requests_total", Help: "HTTP requests by route template and status code.",
	}, []string{"route", "code"})
	markerReads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quiesce_marker_reads_total", Help: "Marker reads by reconciles, by outcome: absent, active, contentless, stale, expired.",
	}, []string{"outcome"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quiesce_tokens_reload_total", Help: "Reloads of the tokens file (SIGHUP) by result: ok, error (the old tokens were kept).",
	}, []string{"result"})
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quiesce_notifications_total", Help: "Notification outcomes by sink and result: delivered, retried, undelivered, failed, dropped.",
	}, []string{"sink", "result"})
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		turns: newCounterCache(turns, func(r string) []string { return []string{r} }),
		reaction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "quiesce_drain_reaction_seconds", Help: "Time from a drain request (the marker's requested_at) to the gate closing.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1ms … 65s
		}),
		requests:    newCounterCache(requests, func(k requestKey) []string { return []string{k.route, strconv.Itoa(k.code)} }),
		markerReads: newCounterCache(markerReads, func(o string) []string { return []string{o} }),
		notified:    newCounterCache(notified, func(k notifyKey) []string { return []string{k.sink, k.result} }),
		reloads:     newCounterCache(reloads, func(r string) []string { return []string{r} }),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quiesce_tokens_last_reload_successful",
			Help: "1 when the last load of the tokens file (at start or on SIGHUP) succeeded; 0 when it failed, the old tokens are in use and a restart would exit 78.",
		}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quiesce_tokens_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the tokens file, at start or on SIGHUP.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quiesce_events_rejected_total", Help: "Internal events moved to events.spool.rejected.jsonl after their last failed try.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quiesce_events_retried_total", Help: "Failed tries of internal events that are tried again after a backoff (within --event-retry-for).",
		}),
		now: time.Now,
	}
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "quiesce_turn_duration_seconds", Help: "How long accepted turns ran, from claiming the session to the end, by result: ok, error, interrupted.",
		Buckets: prometheus.ExponentialBuckets(0.005, 4, 9), // 5ms … 5.5min
	}, []string{"result"})
	m.durations = newObserverCache(durations, DurationResults)
	m.turns.preload(TurnResults...)
	m.markerReads.preload(MarkerOutcomes...)
	m.reloads.preload(TokensReloadResults...)
	m.reg.MustRegister(turns, durations, m.reaction, requests, m.rejected, m.retried, notified, markerReads, reloads, m.reloadOK, m.reloadAt, stateCollector{m},
		newBuildInfo(buildinfo.Read),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// newBuildInfo returns the quiesce_build_info gauge (always 1) labelled
// with the binary's module version, VCS revision and Go version, as read
// (buildinfo.Read: what the toolchain recorded, or what the build stamped) says; "(devel)" and "unknown" stand in for what it does not know.
func newBuildInfo(read func() (*debug.BuildInfo, bool)) prometheus.Collector {
	version, revision, goversion := "(devel)", "unknown", runtime.Version()
	if bi, ok := read(); ok && bi != nil {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		if bi.GoVersion != "" {
			goversion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "quiesce_build_info",
		Help:        "Always 1; the labels tell the module version, VCS revision and Go version that built this binary.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goversion},
	}, func() float64 { return 1 })
}

// TurnEnded counts a turn by result. It allocates nothing and takes no
// lock for a result of TurnResults.
func (m *Metrics) TurnEnded(result string) { m.turns.get(result).Inc() }

// TurnDuration observes how long an accepted turn ran, by result. It
// allocates nothing and takes no lock for a result of DurationResults.
func (m *Metrics) TurnDuration(result string, d time.Duration) {
	m.durations.get(result).Observe(d.Seconds())
}

// MarkerRead counts a reconcile's marker read by outcome.
func (m *Metrics) MarkerRead(outcome string) { m.markerReads.get(outcome).Inc() }

// Notified counts a notification outcome for a sink (notify.Observer).
func (m *Metrics) Notified(sink, result string) { m.notified.get(notifyKey{sink, result}).Inc() }

// EventRejected counts an internal event rejected after its last try.
func (m *Metrics) EventRejected() { m.rejected.Inc() }

// EventRetried counts a failed try of an internal event that is tried again.
func (m *Metrics) EventRetried() { m.retried.Inc() }

// TokensLoaded records the tokens file's load at start, at time at: the
// last load succeeded, at that time. It is not counted as a reload.
func (m *Metrics) TokensLoaded(at time.Time) {
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(at.UnixNano()) / 1e9)
}

// TokensReloaded counts a reload of the tokens file (SIGHUP) that ended
// at time at, by result: ok when err is nil (and then it is the last
// successful load), else error (the old tokens stay in use).
func (m *Metrics) TokensReloaded(at time.Time, err error) {
	if err != nil {
		m.reloads.get("error").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.get("ok").Inc()
	m.TokensLoaded(at)
}

// DrainReaction observes the time from a drain request to the gate closing.
func (m *Metrics) DrainReaction(d time.Duration) { m.reaction.Observe(d.Seconds()) }

// observe makes the scrape read state and in-flight count from status.
func (m *Metrics) observe(status func() api.Status) { m.status.Store(&status) }

// countRequest counts one HTTP request; after the first request of a
// route and code it allocates nothing and takes no lock.
func (m *Metrics) countRequest(route string, code int) {
	m.requests.get(requestKey{route, code}).Inc()
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// counterCache resolves each label combination K of a CounterVec to its
// child once, so counting is a map read and an Inc, never a
// WithLabelValues (which builds a label slice and hashes it under the
// vector's lock). The map is copied on write: label combinations are few
// and fixed after warm-up.
type counterCache[K comparable] struct {
	vec    *prometheus.CounterVec
	labels func(K) []string                         // K's label values, in the vector's order
	m      atomic.Pointer[map[K]prometheus.Counter] // immutable snapshot read lock-free by get
	mu     sync.Mutex                               // serialises misses, which copy m
}

func newCounterCache[K comparable](vec *prometheus.CounterVec, labels func(K) []string) *counterCache[K] {
	c := &counterCache[K]{vec: vec, labels: labels}
	c.m.Store(&map[K]prometheus.Counter{})
	return c
}

// preload resolves keys now, so their series exist (at 0) from the start.
func (c *counterCache[K]) preload(keys ...K) {
	for _, k := range keys {
		c.get(k)
	}
}

// get returns the child for k, creating it on the first call for k.
func (c *counterCache[K]) get(k K) prometheus.Counter {
	if ctr, ok := (*c.m.Load())[k]; ok {
		return ctr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if ctr, ok := old[k]; ok {
		return ctr
	}
	next := make(map[K]prometheus.Counter, len(old)+1)
	for key, ctr := range old {
		next[key] = ctr
	}
	ctr := c.vec.WithLabelValues(c.labels(k)...)
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}

// observerCache holds a HistogramVec's children for known label values,
// resolved once (read without a lock); other values go through the
// vector.
type observerCache struct {
	vec   *prometheus.HistogramVec
	known map[string]prometheus.Observer // fixed at creation, read only
}

func newObserverCache(vec *prometheus.HistogramVec, values []string) *observerCache {
	c := &observerCache{vec: vec, known: make(map[string]prometheus.Observer, len(values))}
	for _, v := range values {
		c.known[v] = vec.WithLabelValues(v)
	}
	return c
}

// get returns the child for value.
func (c *observerCache) get(value string) prometheus.Observer {
	if o, ok := c.known[value]; ok {
		return o
	}
	return c.vec.WithLabelValues(value)
}

// stateCollector reports quiesce_state, quiesce_ready, quiesce_state_since_seconds,
// quiesce_turns_in_flight, quiesce_spooled_events, quiesce_webhook_pending,
// quiesce_drain_expires_in_seconds and quiesce_agent_failures_total from
// one Status call per scrape.
type stateCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- readyDesc
	ch <- stateSinceDesc
	ch <- agentFailuresDesc
	ch <- inFlightDesc
	ch <- spoolDesc
	ch <- webhookPendDesc
	ch <- drainExpiryDesc
	ch <- drainPersistedDesc
}

// Collect implements prometheus.Collector: one Status call per scrape.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := api.Status{State: fsm.Running}
	if f := c.m.status.Load(); f != nil {
		st = (*f)()
	}
	for _, s := range fsm.States {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, string(s))
	}
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
	if !st.StateSince.IsZero() {
		ch <- prometheus.MustNewConstMetric(stateSinceDesc, prometheus.GaugeValue, float64(st.StateSince.UnixNano())/1e9)
	}
	var failures uint64
	if st.Agent != nil {
		failures = st.Agent.Failures
	}
	ch <- prometheus.MustNewConstMetric(agentFailuresDesc, prometheus.CounterValue, float64(failures))
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(st.ActiveAgents))
	ch <- prometheus.MustNewConstMetric(spoolDesc, prometheus.GaugeValue, float64(st.SpooledEvents))
	ch <- prometheus.MustNewConstMetric(webhookPendDesc, prometheus.GaugeValue, float64(st.WebhookPending))
	if d := st.Drain; d != nil && d.Status == "active" && !d.ExpiresAt.IsZero() {
		left := max(d.ExpiresAt.Sub(c.m.now()).Seconds(), 0)
		ch <- prometheus.MustNewConstMetric(drainExpiryDesc, prometheus.GaugeValue, left)
	}
	if d := st.Drain; d != nil && d.Status == "active" {
		v := 0.0
		if d.Persisted {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(drainPersistedDesc, prometheus.GaugeValue, v)
	}
}
