package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Notifier.Send after Notifier.Close was called.
var ErrClosed = errors.New("notify: notifier closed")

// ErrNotRecorded is wrapped by the error Notifier.Send returns when the
// outbox append failed. The message was still queued for every other sink
// and counts as sent (a repeat is ignored).
var ErrNotRecorded = errors.New("notify: not recorded in the outbox")

// undeliveredMsg is the WARN line for every (message, sink) pair that was
// not delivered.
const undeliveredMsg = "notification not delivered; kept in outbox"

// NotifierOptions tunes a Notifier. The zero value is ready to use.
type NotifierOptions struct {
	// Logger receives the Notifier's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told the outcome of every message on every
	// sink, the outbox included: ResultDelivered, ResultFailed or
	// ResultUndelivered, exactly once per (message, sink).
	Observer Observer
}

// Notifier fans each message out to an Outbox and to any number of other
// sinks. It is safe for concurrent use.
//
// Send first appends the message to the outbox and fsyncs it; then, whether
// or not that worked, it queues the message for every other sink. Each sink
// has its own unbounded in-memory queue drained by its own goroutine (by
// Concurrency() goroutines for a ConcurrentSink), so Send never waits on a
// sink, and a failing sink, the outbox included, never holds back another.
//
// Flush waits until every sink has caught up, up to its context's deadline;
// whatever misses the deadline is given up on: logged at WARN
// ("notification not delivered; kept in outbox") with its message ID and
// sink, handed to the sink's Keep if it is a Keeper, and never retried by
// this Notifier. A sink that fails is logged (and kept) the same way. Each
// (message, sink) pair is logged at most once, and before any Flush waiting
// for it returns.
type Notifier struct {
	outbox  *Outbox
	logger  *slog.Logger
	observe Observer
	sinks   []*queue

	// mu serialises Send, so that deduplication, the outbox, Sent and every
	// queue see messages in one order; it guards seen and sent.
	mu   sync.Mutex
	seen map[string]struct{}
	sent []Message

	// closed refuses new Sends; atomic so Close need not wait for mu, which
	// a Send holds across an outbox fsync.
	closed atomic.Bool

	// live counts lanes still running; the last one to exit closes exited,
	// which Close can wait on with a ctx (a WaitGroup cannot be selected).
	live   atomic.Int32
	exited chan struct{}
}

// NewNotifier returns a Notifier that records every message in outbox and
// delivers it to sinks, with a nil Observer. It is NewNotifierWith(outbox,
// NotifierOptions{Logger: logger}, sinks...).
func NewNotifier(outbox *Outbox, logger *slog.Logger, sinks ...Sink) *Notifier {
	return NewNotifierWith(outbox, NotifierOptions{Logger: logger}, sinks...)
}

// NewNotifierWith returns a Notifier that records every message in outbox
// and delivers it to sinks, starting one goroutine per sink (Concurrency()
// for a ConcurrentSink). The Notifier owns outbox and closes it in Close.
// outbox must not be nil, nor any sink: NewNotifierWith panics if one is.
//
// Sinks are named in log lines by their String method when they have one,
// else by their type, with " #2", " #3"... for repeats. Do not pass outbox
// as a sink too: it would record every message twice.
func NewNotifierWith(outbox *Outbox, opt NotifierOptions, sinks ...Sink) *Notifier {
	if outbox == nil {
		panic("notify: NewNotifier: nil outbox")
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	n := &Notifier{
		outbox:  outbox,
		logger:  opt.Logger,
		observe: opt.Observer,
		seen:    make(map[string]struct{}),
		exited:  make(chan struct{}),
	}
	names := make(map[string]int)
	lanes := 0
	for i, s := range sinks {
		if s == nil {
			panic(fmt.Sprintf("notify: NewNotifier: sink %d is nil", i))
		}
		name := sinkName(s)
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s #%d", name, names[name])
		}
		q := &queue{sink: s, name: name, label: sinkLabel(s), lanes: 1}
		q.wake.L = &q.mu
		q.keeper, _ = s.(Keeper)
		if c, ok := s.(ConcurrentSink); ok {
			q.lanes = min(max(c.Concurrency(), 1), maxLanes)
		}
		n.sinks = append(n.sinks, q)
		lanes += q.lanes
	}
	n.live.Store(int32(lanes))
	if lanes == 0 {
		close(n.exited)
	}
	for _, q := range n.sinks {
		for range q.lanes {
			go n.lane(q)
		}
	}
	return n
}

// sinkName returns how log lines name s.
func sinkName(s Sink) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// sinkLabel returns how an Observer names s: short and stable.
func sinkLabel(s Sink) string {
	switch s.(type) {
	case *Outbox:
		return "outbox"
	case *Log:
		return "log"
	case *Webhook:
		return webhookLabel
	case *Recorder:
		return "recorder"
	}
	return sinkName(s)
}

// Send records m in the outbox and queues it for every other sink.
//
// Before anything else Send validates m (Kind must be KindShutdownBroadcast
// or KindSessionInterrupted; Target and ShutdownID must not be empty) and
// fills defaults: a zero At becomes the current time, At is converted to
// UTC, and an empty Text becomes BroadcastText() or InterruptText(Target).
//
// A message whose ID was already accepted is ignored: Send returns nil and
// logs at DEBUG. If ctx is already done, Send returns an error wrapping
// ctx.Err() and nothing is recorded or queued, so the caller may retry.
// Otherwise the message is accepted: if the outbox append fails, Send still
// queues it for every other sink and returns the outbox's error wrapped
// together with ErrNotRecorded. Send returns ErrClosed after Close. Send
// waits for another Send's outbox append, never for a sink.
func (n *Notifier) Send(ctx context.Context, m Message) error {
	return n.SendAll(ctx, []Message{m})
}

// SendAll is Send for several messages at once: they are validated first
// (one invalid message sends none), recorded in the outbox in one append
// with one fsync, and queued for every other sink in order. A shutdown's
// interrupt pings go through it, so a hundred cut-off sessions cost one
// disk round trip, not a hundred.
func (n *Notifier) SendAll(ctx context.Context, msgs []Message) error {
	now := time.Now()
	norm := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
		norm = append(norm, m.normalize(now))
	}
	if len(norm) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify: send %s: %w", norm[0].ID(), err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return ErrClosed
	}
	fresh := norm[:0:0]
	for _, m := range norm {
		if _, dup := n.seen[m.ID()]; dup {
			n.logger.DebugContext(ctx, "notification already sent; ignored", m.attrs()...)
			continue
		}
		n.seen[m.ID()] = struct{}{} // also dedups a repeat within msgs
		fresh = append(fresh, m)
	}
	if len(fresh) == 0 {
		return nil
	}

	// The outbox first, so the messages are on disk before any sink sees
	// them; its write is not cancelled half-way by ctx.
	oerr := n.outbox.SendAll(context.WithoutCancel(ctx), fresh)
	for range fresh {
		if oerr != nil {
			n.observe.observe("outbox", ResultFailed)
		} else {
			n.observe.observe("outbox", ResultDelivered)
		}
	}
	n.sent = append(n.sent, fresh...)

	var err error
	for _, m := range fresh {
		for _, q := range n.sinks {
			if !q.enqueue(m) {
				// Close stopped the sink while this Send was under way.
				n.report(q, []item{{msg: m}}, ErrClosed, ResultUndelivered)
				err = ErrClosed
			}
		}
	}
	if oerr != nil {
		return fmt.Errorf("notify: send %s: %w (queued for the other sinks): %w", fresh[0].ID(), ErrNotRecorded, oerr)
	}
	return err
}

// Flush waits until every message queued before the call has been resolved
// by every sink: delivered, or failed and logged (and kept, for a Keeper).
//
// If ctx ends first, Flush gives up on what is left of those messages: it
// cancels the context of each attempt still running, logs every (message,
// sink) pair not delivered at WARN ("notification not delivered; kept in
// outbox", with the message id and the sink), hands them to the sink's Keep
// if it is a Keeper, and returns ctx.Err(). Flush never waits for a sink
// after ctx is done, even one that ignores its context.
func (n *Notifier) Flush(ctx context.Context) error {
	waits := make([]flushWait, len(n.sinks))
	for i, q := range n.sinks {
		waits[i] = q.flushWaiter()
	}
	for _, w := range waits {
		if w.done == nil {
			continue
		}
		select {
		case <-w.done:
		case <-ctx.Done():
			return n.abandon(waits, ctx.Err())
		}
	}
	return nil
}

// abandon gives up on every message below each sink's flush target (see
// Flush). It returns cause unless every sink had caught up after all.
func (n *Notifier) abandon(waits []flushWait, cause error) error {
	var err error
	for i, q := range n.sinks {
		items, caughtUp := q.takeBelow(waits[i], false)
		if !caughtUp {
			err = cause
		}
		n.giveUp(q, items, cause, ResultUndelivered)
	}
	return err
}

// Close stops the Notifier: Sends after Close return ErrClosed; Close
// flushes (see Flush), then gives up on anything still queued or in flight
// (a Send racing with Close), cancelling the attempts still running, stops
// the sinks' goroutines and closes the outbox. Attempts that start after
// Close was called end by ctx's deadline.
//
// Close returns ctx.Err() if ctx ends before the queues are flushed or
// before the goroutines have exited, and never waits past ctx for a sink,
// even one that ignores its context (its goroutine then exits whenever its
// Send returns). Otherwise Close returns the outbox's close error, or nil.
// Calling Close again only waits, up to ctx, for the goroutines to exit.
func (n *Notifier) Close(ctx context.Context) error {
	if n.closed.Swap(true) {
		return n.waitLanes(ctx)
	}
	if dl, ok := ctx.Deadline(); ok {
		for _, q := range n.sinks {
			q.setDeadline(dl)
		}
	}
	err := n.Flush(ctx)
	for _, q := range n.sinks {
		items, _ := q.takeBelow(flushWait{target: math.MaxUint64}, true)
		n.giveUp(q, items, ErrClosed, ResultUndelivered)
	}
	if werr := n.waitLanes(ctx); err == nil {
		err = werr
	}
	if cerr := n.outbox.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitLanes waits until every lane has exited or ctx is done.
func (n *Notifier) waitLanes(ctx context.Context) error {
	select {
	case <-n.exited:
		return nil
	default:
	}
	select {
	case <-n.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sent returns the messages accepted so far (with their defaults filled
// in), in the order they were accepted, including any whose outbox append
// failed. Duplicates ignored by Send are not included. Sent waits for a Send
// in progress.
func (n *Notifier) Sent() []Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent)
}

// lane is one of q's goroutines: it sends q's queue until q stops.
func (n *Notifier) lane(q *queue) {
	defer func() {
		if n.live.Add(-1) == 0 {
			close(n.exited)
		}
	}()
	for {
		a, ctx, ok := q.take()
		if !ok {
			return
		}
		err := sendSafely(ctx, q.sink, a.msg)
		a.cancel()
		if !q.finish(a) {
			n.late(q, a.msg, err)
			continue
		}
		if err == nil {
			n.logger.Debug("notification delivered", append(a.msg.attrs(), "sink", q.name)...)
			n.observe.observe(q.label, ResultDelivered)
			q.settled([]item{a.item})
		} else {
			n.giveUp(q, []item{a.item}, err, ResultFailed)
		}
	}
}

// giveUp resolves items of q's settling set that q did not deliver: it
// reports them, and only then marks them settled, which may wake a Flush.
func (n *Notifier) giveUp(q *queue, items []item, cause error, result string) {
	if len(items) == 0 {
		return
	}
	n.report(q, items, cause, result)
	q.settled(items)
}

// report logs each of items at WARN as not delivered by q, tells the
// Observer and hands them to q's Keeper.
func (n *Notifier) report(q *queue, items []item, cause error, result string) {
	msgs := make([]Message, len(items))
	for i, it := range items {
		msgs[i] = it.msg
		n.logger.Warn(undeliveredMsg, append(it.msg.attrs(), "sink", q.name, "error", cause)...)
		n.observe.observe(q.label, result)
	}
	if q.keeper != nil {
		if err := q.keeper.Keep(msgs); err != nil {
			n.logger.Error("notifications not kept for redelivery", "sink", q.name, "count", len(msgs), "error", err)
		}
	}
}

// late logs the end of an attempt that a Flush or Close already gave up on
// (and logged).
func (n *Notifier) late(q *queue, m Message, err error) {
	attrs := append(m.attrs(), "sink", q.name)
	if err == nil {
		n.logger.Info("notification delivered after it was given up", attrs...)
		return
	}
	n.logger.Debug("given-up notification attempt ended", append(attrs, "error", err)...)
}

// sendSafely calls s.Send, turning a panic into an error so that one broken
// sink cannot take the gateway down.
func sendSafely(ctx context.Context, s Sink, m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("notify: sink panicked: %v", r)
		}
	}()
	return s.Send(ctx, m)
}

// queue is one sink's state: its messages move from queued to inflight
// (taken by a lane) to settling (being logged) to resolved (gone), or from
// queued or inflight straight to settling when a deadline gives up on them.
// Whoever moves an item into settling resolves it, exactly once.
type queue struct {
	sink   Sink
	name   string // in log lines
	label  string // for the Observer
	keeper Keeper // nil unless sink is a Keeper
	lanes  int

	// mu guards everything below.
	mu sync.Mutex
	// wake, on mu, is where idle lanes sleep: enqueue signals one, stop
	// wakes them all.
	wake     sync.Cond
	queued   []item     // FIFO, by seq
	inflight []*attempt // at most lanes
	settling []uint64   // seqs being resolved
	waiters  []flushWait
	next     uint64    // seq of the next message enqueued
	stopped  bool      // lanes exit; enqueue refuses
	deadline time.Time // set by Close: later attempts end by then
}

// item is one message queued for one sink; seq orders the sink's queue.
type item struct {
	msg Message
	seq uint64
}

// attempt is an item a lane is sending; cancel ends its context.
type attempt struct {
	item
	cancel context.CancelFunc
}

// flushWait is a Flush waiting for a sink: done is closed once every item
// with a seq below target is resolved. A nil done means it already was.
type flushWait struct {
	target uint64
	done   chan struct{}
}

// enqueue adds m to the queue and wakes a lane; it reports false, adding
// nothing, once q is stopped.
func (q *queue) enqueue(m Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	q.queued = append(q.queued, item{msg: m, seq: q.next})
	q.next++
	q.wake.Signal()
	return true
}

// take waits for a queued item and moves it in flight, with the context
// its attempt runs under. It reports false once q is stopped.
func (q *queue) take() (*attempt, context.Context, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queued) == 0 && !q.stopped {
		q.wake.Wait()
	}
	if q.stopped {
		return nil, nil, false
	}
	it := q.queued[0]
	q.queued[0] = item{}
	q.queued = q.queued[1:]
	var ctx context.Context
	var cancel context.CancelFunc
	if q.deadline.IsZero() {
		ctx, cancel = context.WithCancel(context.Background())
	} else {
		ctx, cancel = context.WithDeadline(context.Background(), q.deadline)
	}
	a := &attempt{item: it, cancel: cancel}
	q.inflight = append(q.inflight, a)
	return a, ctx, true
}

// finish moves a from inflight to settling and reports true, or reports
// false if a Flush or Close already gave up on a.
func (q *queue) finish(a *attempt) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.inflight, a)
	if i < 0 {
		return false
	}
	q.inflight = slices.Delete(q.inflight, i, i+1)
	q.settling = append(q.settling, a.seq)
	return true
}

// settled removes items from settling and wakes every Flush now caught up.
func (q *queue) settled(items []item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range items {
		if i := slices.Index(q.settling, it.seq); i >= 0 {
			q.settling = slices.Delete(q.settling, i, i+1)
		}
	}
	low := q.lowLocked()
	q.waiters = slices.DeleteFunc(q.waiters, func(w flushWait) bool {
		if w.target <= low {
			close(w.done)
			return true
		}
		return false
	})
}

// lowLocked returns the lowest seq not yet resolved (next if none). q.mu
// must be held.
func (q *queue) lowLocked() uint64 {
	low := q.next
	if len(q.queued) > 0 {
		low = min(low, q.queued[0].seq)
	}
	for _, a := range q.inflight {
		low = min(low, a.seq)
	}
	for _, s := range q.settling {
		low = min(low, s)
	}
	return low
}

// flushWaiter returns a wait for everything queued so far.
func (q *queue) flushWaiter() flushWait {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := flushWait{target: q.next}
	if q.lowLocked() >= w.target {
		return w
	}
	w.done = make(chan struct{})
	q.waiters = append(q.waiters, w)
	return w
}

// takeBelow gives up on every queued or in-flight item with a seq below
// w.target: it cancels the attempts, moves the items to settling and
// returns them for the caller to resolve. It drops w from the waiters and
// reports whether q had caught up with w. stop also stops q's lanes and
// makes enqueue refuse.
func (q *queue) takeBelow(w flushWait, stop bool) (items []item, caughtUp bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.done != nil {
		q.waiters = slices.DeleteFunc(q.waiters, func(x flushWait) bool { return x.done == w.done })
	}
	caughtUp = q.lowLocked() >= w.target
	k := 0
	for k < len(q.queued) && q.queued[k].seq < w.target {
		items = append(items, q.queued[k])
		k++
	}
	clear(q.queued[:k])
	q.queued = q.queued[k:]
	q.inflight = slices.DeleteFunc(q.inflight, func(a *attempt) bool {
		if a.seq >= w.target {
			return false
		}
		a.cancel()
		items = append(items, a.item)
		return true
	})
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.seq, b.seq) })
	for _, it := range items {
		q.settling = append(q.settling, it.seq)
	}
	if stop {
		q.stopped = true
		q.wake.Broadcast()
	}
	return items, caughtUp
}

// setDeadline makes attempts that start from now on end by dl.
func (q *queue) setDeadline(dl time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = dl
}
