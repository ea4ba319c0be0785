package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// TurnResults lists the values of the result label of quiesce_turns_total.
var TurnResults = []string{"ok", "error", "refused", "busy", "interrupted"}

// Metrics is the Prometheus side of a gateway, on its own registry, with
// the standard go_* and process_* collectors and:
//
//	quiesce_state{state}                  1 for the current lifecycle state, 0 for the others
//	quiesce_turns_in_flight               turns accepted and not yet finished
//	quiesce_turns_total{result}           turns by result (see TurnResults)
//	quiesce_drain_reaction_seconds        time from a drain request to the gate closing
//	quiesce_http_requests_total{route,code} HTTP requests by route template and status
//	quiesce_events_rejected_total         internal events moved to the rejected file
//	quiesce_spooled_events                internal events in the spool
//	quiesce_notifications_total{sink,result} notification outcomes (delivered, retried, undelivered, failed)
//	quiesce_marker_reads_total{outcome}   reconciles' marker reads by outcome
//
// State and in-flight count are read from the Gateway at scrape time, so
// they are never stale. Metrics implements gateway.Metrics; all methods
// are safe for concurrent use. Create it with NewMetrics.
type Metrics struct {
	reg         *prometheus.Registry
	turns       *prometheus.CounterVec
	reaction    prometheus.Histogram
	requests    *prometheus.CounterVec
	rejected    prometheus.Counter
	notified    *prometheus.CounterVec
	markerReads *prometheus.CounterVec
	status      atomic.Pointer[func() gateway.Status]
}

var _ gateway.Metrics = (*Metrics)(nil)

var (
	stateDesc    = prometheus.NewDesc("quiesce_state", "1 for the current lifecycle state, 0 for the others.", []string{"state"}, nil)
	inFlightDesc = prometheus.NewDesc("quiesce_turns_in_flight", "Turns accepted and not yet finished.", nil, nil)
	spoolDesc    = prometheus.NewDesc("quiesce_spooled_events", "Internal events in the spool: waiting, running or retrying.", nil, nil)
)

// NewMetrics returns Metrics with every series registered and every label
// value of quiesce_state and quiesce_turns_total present from the start.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiesce_turns_total", Help: "Turns by result: ok, error, refused, busy, interrupted.",
		}, []string{"result"}),
		reaction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "quiesce_drain_reaction_seconds", Help: "Time from a drain request (the marker's requested_at) to the gate closing.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1ms … 65s
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiesce_http_requests_total", Help: "HTTP requests by route template and status code.",
		}, []string{"route", "code"}),
		markerReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiesce_marker_reads_total", Help: "Marker reads by reconciles, by outcome: absent, active, contentless, stale, expired.",
		}, []string{"outcome"}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiesce_notifications_total", Help: "Notification outcomes by sink and result: delivered, retried, undelivered, failed.",
		}, []string{"sink", "result"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quiesce_events_rejected_total", Help: "Internal events moved to events.spool.rejected.jsonl after their last failed try.",
		}),
	}
	for _, r := range TurnResults {
		m.turns.WithLabelValues(r)
	}
	for _, o := range []string{"absent", "active", "contentless", "stale", "expired"} {
		m.markerReads.WithLabelValues(o)
	}
	m.reg.MustRegister(m.turns, m.reaction, m.requests, m.rejected, m.notified, m.markerReads, stateCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// TurnEnded counts a turn by result.
func (m *Metrics) TurnEnded(result string) { m.turns.WithLabelValues(result).Inc() }

// MarkerRead counts a reconcile's marker read by outcome.
func (m *Metrics) MarkerRead(outcome string) { m.markerReads.WithLabelValues(outcome).Inc() }

// Notified counts a notification outcome for a sink (notify.Observer).
func (m *Metrics) Notified(sink, result string) { m.notified.WithLabelValues(sink, result).Inc() }

// EventRejected counts an internal event rejected after its last try.
func (m *Metrics) EventRejected() { m.rejected.Inc() }

// DrainReaction observes the time from a drain request to the gate closing.
func (m *Metrics) DrainReaction(d time.Duration) { m.reaction.Observe(d.Seconds()) }

// observe makes the scrape read state and in-flight count from status.
func (m *Metrics) observe(status func() gateway.Status) { m.status.Store(&status) }

func (m *Metrics) countRequest(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// stateCollector reports quiesce_state and quiesce_turns_in_flight from
// one Status call per scrape.
type stateCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- inFlightDesc
	ch <- spoolDesc
}

// Collect implements prometheus.Collector: one Status call per scrape.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := gateway.Status{State: fsm.Running}
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
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(st.ActiveAgents))
	ch <- prometheus.MustNewConstMetric(spoolDesc, prometheus.GaugeValue, float64(st.SpooledEvents))
}
