package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// has its own unbounded queue drained by its own goroutine (by Concurrency()
// goroutines for a ConcurrentSink), so Send never waits on a sink, and a
// failing sink, the outbox included, never holds back another.
//
// Flush waits until every sink has handled what was queued before the call,
// up to its context's deadline; whatever misses the deadline is given up
// on: logged at WARN ("notification not delivered; kept in outbox") with its
// message ID and sink, handed to the sink's Keep if it is a Keeper, and
// never retried by this Notifier. A sink that fails is logged (and kept)
// the same way. Each (message, sink) pair is resolved exactly once.
//
// Every mutex, atomic, goroutine and channel it uses, with its reason, is
// listed in the package documentation (Concurrency).
type Notifier struct {
	outbox  *Outbox
	logger  *slog.Logger
	observe Observer
	sinks   []*sinkQueue

	// mu serialises SendAll, so that deduplication, the outbox, Sent and
	// every sink's queue see messages in one order; it guards seen and sent.
	mu   sync.Mutex
	seen map[string]struct{}
	sent []Message

	// closed refuses new Sends; atomic so that Close need not wait for mu,
	// which a Send holds across an outbox fsync.
	closed atomic.Bool
}

// sinkQueue is one sink, its queue and its goroutines. The queue is a
// slice under a mutex with a wake-up channel, not a channel of messages:
// a bounded channel could make Send wait on a slow sink, and Send must
// never hold up the shutdown sequence.
type sinkQueue struct {
	sink   Sink
	name   string // in log lines
	label  string // for the Observer
	keeper Keeper // nil unless sink is a Keeper

	// mu guards queue, open, stopped and deadline.
	mu sync.Mutex
	// queue holds the deliveries no goroutine has taken yet, oldest first.
	queue []*delivery
	// open holds every delivery queued since the last Flush, taken or not
	// (Flush drops the resolved ones): what Flush and Close wait for.
	open []*delivery
	// stopped: Close has given up on everything; enqueue refuses.
	stopped bool
	// deadline, set by Close, bounds every attempt started afterwards.
	deadline time.Time

	wake  chan struct{}   // capacity 1: the queue may hold work
	stop  chan struct{}   // closed by Close: the goroutines return
	exits []chan struct{} // one per goroutine, closed when it returns
}

// delivery is one message on its way to one sink.
type delivery struct {
	msg Message
	// ctx is the context of its attempt; cancel ends it when the delivery
	// is given up on.
	ctx    context.Context
	cancel context.CancelFunc
	// claimed is set by whoever resolves the delivery: the goroutine whose
	// attempt ended, or a Flush or Close giving up on it, whichever comes
	// first. So it is logged and counted exactly once.
	claimed atomic.Bool
	// resolved is closed once the delivery was resolved and logged.
	resolved chan struct{}
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
	n := &Notifier{outbox: outbox, logger: opt.Logger, observe: opt.Observer, seen: make(map[string]struct{})}
	names := make(map[string]int)
	for i, s := range sinks {
		if s == nil {
			panic(fmt.Sprintf("notify: NewNotifier: sink %d is nil", i))
		}
		name := sinkName(s)
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s #%d", name, names[name])
		}
		q := &sinkQueue{sink: s, name: name, label: sinkLabel(s), wake: make(chan struct{}, 1), stop: make(chan struct{})}
		q.keeper, _ = s.(Keeper)
		workers := 1
		if c, ok := s.(ConcurrentSink); ok {
			workers = min(max(c.Concurrency(), 1), maxLanes)
		}
		q.exits = make([]chan struct{}, workers)
		n.sinks = append(n.sinks, q)
	}
	for _, q := range n.sinks { // once every sink passed the nil check
		for i := range q.exits {
			q.exits[i] = make(chan struct{})
			go n.work(q, q.exits[i])
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
// together with ErrNotRecorded. Send returns ErrClosed after Close, and an
// error wrapping ErrClosed when Close stopped a sink while this Send was
// under way. A message no sink took (the outbox failed and every other
// sink was stopped, or there is none) is not sent: the error does not wrap
// ErrNotRecorded and a repeat is not ignored. Send waits for another Send's
// outbox append, never for a sink.
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
	refused := 0
	for _, q := range n.sinks {
		if r := q.enqueue(fresh); len(r) > 0 {
			// Close stopped the sink while this Send was under way.
			n.resolve(q, r, ErrClosed, ResultUndelivered)
			refused++
		}
	}
	if oerr != nil && refused == len(n.sinks) {
		// No sink took them (Close closed every sink, then the outbox,
		// while this Send was under way): not sent, and not seen either.
		for _, m := range fresh {
			delete(n.seen, m.ID())
		}
		err := fmt.Errorf("notify: send %s: not recorded in the outbox nor queued for any sink: %w", fresh[0].ID(), oerr)
		if refused > 0 {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return err
	}
	n.sent = append(n.sent, fresh...)
	switch {
	case refused > 0:
		return ErrClosed
	case oerr != nil:
		return fmt.Errorf("notify: send %s: %w (queued for the other sinks): %w", fresh[0].ID(), ErrNotRecorded, oerr)
	}
	return nil
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
	open := make([][]*delivery, len(n.sinks))
	for i, q := range n.sinks {
		open[i] = q.unresolved()
	}
	for _, ds := range open {
		for _, d := range ds {
			select {
			case <-d.resolved:
			case <-ctx.Done():
				if allResolved(open) {
					return nil
				}
				for i, q := range n.sinks {
					n.resolve(q, open[i], ctx.Err(), ResultUndelivered)
				}
				return ctx.Err()
			}
		}
	}
	return nil
}

// allResolved reports whether every delivery in open is resolved.
func allResolved(open [][]*delivery) bool {
	for _, ds := range open {
		for _, d := range ds {
			select {
			case <-d.resolved:
			default:
				return false
			}
		}
	}
	return true
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
	if dl, ok := ctx.Deadline(); ok && !n.closed.Load() {
		// Before Sends see ErrClosed: an attempt that starts once they do
		// ends by the deadline.
		for _, q := range n.sinks {
			q.setDeadline(dl)
		}
	}
	if n.closed.Swap(true) {
		return n.waitWorkers(ctx)
	}
	err := n.Flush(ctx)
	for _, q := range n.sinks {
		n.resolve(q, q.stopAll(), ErrClosed, ResultUndelivered)
	}
	if werr := n.waitWorkers(ctx); err == nil {
		err = werr
	}
	if cerr := n.outbox.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitWorkers waits until every sink's goroutines have returned, or ctx is
// done.
func (n *Notifier) waitWorkers(ctx context.Context) error {
	for _, q := range n.sinks {
		for _, exit := range q.exits {
			select {
			case <-exit:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
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

// work is one of q's goroutines: it sends q's deliveries one at a time
// until Close stops q, and closes exit when it returns.
func (n *Notifier) work(q *sinkQueue, exit chan<- struct{}) {
	defer close(exit)
	for {
		d, dl, ok := q.take()
		if !ok {
			return
		}
		ctx, cancel := d.ctx, context.CancelFunc(func() {})
		if !dl.IsZero() {
			ctx, cancel = context.WithDeadline(d.ctx, dl)
		}
		err := sendSafely(ctx, q.sink, d.msg)
		cancel()
		if !d.claimed.CompareAndSwap(false, true) {
			n.late(q, d.msg, err) // a Flush or Close gave up on it and logged it
			continue
		}
		d.cancel()
		if err == nil {
			n.logger.Debug("notification delivered", append(d.msg.attrs(), "sink", q.name)...)
			n.observe.observe(q.label, ResultDelivered)
		} else {
			n.report(q, []*delivery{d}, err, ResultFailed)
		}
		close(d.resolved)
	}
}

// resolve gives up on those of ds nobody has resolved yet: it cancels
// their attempts, reports them (see report) and marks them resolved.
func (n *Notifier) resolve(q *sinkQueue, ds []*delivery, cause error, result string) {
	var mine []*delivery
	for _, d := range ds {
		if d.claimed.CompareAndSwap(false, true) {
			d.cancel()
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return
	}
	n.report(q, mine, cause, result)
	for _, d := range mine {
		close(d.resolved)
	}
}

// report logs each of ds at WARN as not delivered by q, tells the Observer
// and hands them to q's Keeper, in one Keep call.
func (n *Notifier) report(q *sinkQueue, ds []*delivery, cause error, result string) {
	msgs := make([]Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.msg
		n.logger.Warn(undeliveredMsg, append(d.msg.attrs(), "sink", q.name, "error", cause)...)
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
func (n *Notifier) late(q *sinkQueue, m Message, err error) {
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

// enqueue queues a delivery of each of msgs and wakes a goroutine. Once q
// is stopped it queues nothing and returns the deliveries, for the caller
// to resolve.
func (q *sinkQueue) enqueue(msgs []Message) (refused []*delivery) {
	ds := make([]*delivery, len(msgs))
	for i, m := range msgs {
		ctx, cancel := context.WithCancel(context.Background())
		ds[i] = &delivery{msg: m, ctx: ctx, cancel: cancel, resolved: make(chan struct{})}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return ds
	}
	q.queue = append(q.queue, ds...)
	q.open = append(q.open, ds...)
	q.signal()
	return nil
}

// signal wakes one idle goroutine, without blocking.
func (q *sinkQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// take waits for a queued delivery that nobody gave up on yet and returns
// it with the deadline its attempt gets (zero for none); it reports false
// once Close stopped q.
func (q *sinkQueue) take() (*delivery, time.Time, bool) {
	for {
		q.mu.Lock()
		for len(q.queue) > 0 && !q.stopped {
			d := q.queue[0]
			q.queue[0] = nil
			q.queue = q.queue[1:]
			if d.claimed.Load() {
				continue // given up on while it waited
			}
			if len(q.queue) > 0 {
				q.signal() // pass the wake-up on to another idle goroutine
			}
			dl := q.deadline
			q.mu.Unlock()
			return d, dl, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-q.stop:
			return nil, time.Time{}, false
		}
	}
}

// unresolved returns the deliveries queued on q and not yet resolved,
// dropping the resolved ones from q.open.
func (q *sinkQueue) unresolved() []*delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.open = slices.DeleteFunc(q.open, func(d *delivery) bool {
		select {
		case <-d.resolved:
			return true
		default:
			return false
		}
	})
	return slices.Clone(q.open)
}

// stopAll stops q: enqueue refuses from now on and its goroutines return
// once their attempt ends. It returns every delivery queued so far, for
// the caller to give up on those not yet resolved.
func (q *sinkQueue) stopAll() []*delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped {
		q.stopped = true
		close(q.stop)
	}
	open := q.open
	q.open, q.queue = nil, nil
	return open
}

// setDeadline makes attempts that start from now on end by dl.
func (q *sinkQueue) setDeadline(dl time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = dl
}
