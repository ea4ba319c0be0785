package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"
)

// ErrClosed is returned by Notifier.Send after Notifier.Close was called.
var ErrClosed = errors.New("notify: notifier closed")

// Notifier fans each message out to an Outbox and to any number of other
// sinks. It is safe for concurrent use.
//
// Send first appends the message to the outbox and fsyncs it, synchronously;
// only then is the message queued for the other sinks. Each sink has one
// background worker and an unbounded in-memory queue, delivered in order, so
// Send never waits on a slow sink. Flush waits for the queues to drain, up to
// its context's deadline; whatever misses the deadline is logged at WARN
// ("notification not delivered; kept in outbox") with its message ID and is
// never retried by this Notifier, so a later Flush or Close does not wait for
// it again. A sink that fails is logged the same way. Nothing is dropped
// without a log line, and everything is in the outbox.
type Notifier struct {
	outbox *Outbox
	logger *slog.Logger

	// send is a one-slot semaphore that serialises Send (deduplication,
	// outbox append and enqueue) and lets a waiting Send honour its ctx.
	send chan struct{}

	// stopCtx is the parent of every context passed to a sink; stop
	// cancels it when the Notifier closes.
	stopCtx context.Context
	stop    context.CancelFunc

	mu       sync.Mutex
	seen     map[string]struct{}
	sent     []Message
	closed   bool // no new Sends
	stopped  bool // workers told to exit
	workers  []*worker
	running  int           // workers not yet exited
	exited   chan struct{} // closed when running reaches 0
	progress chan struct{} // closed and replaced whenever a queued item is resolved
}

// worker is the queue of one sink. Its fields are guarded by Notifier.mu.
type worker struct {
	sink     Sink
	name     string
	wake     chan struct{} // capacity 1: coalesces "queue grew" signals
	queue    []item
	next     uint64 // seq of the next item to enqueue
	inflight *flight
}

// item is one message queued for one sink; seq orders the sink's queue.
type item struct {
	msg Message
	seq uint64
}

// flight is the item a worker is sending.
type flight struct {
	item
	cancel    context.CancelFunc
	abandoned bool // a Flush or Close deadline passed; already logged
}

// undelivered is a (message, sink) pair that missed a deadline.
type undelivered struct {
	msg  Message
	sink string
}

// NewNotifier returns a Notifier that records every message in outbox and
// delivers it to sinks, starting one worker goroutine per sink. The Notifier
// owns outbox and closes it in Close. outbox must not be nil, nor any sink:
// NewNotifier panics if one is. A nil logger means slog.Default().
//
// Sinks are named in log lines by their String method when they have one,
// else by their type. Do not pass outbox as a sink too: it would record every
// message twice.
func NewNotifier(outbox *Outbox, logger *slog.Logger, sinks ...Sink) *Notifier {
	if outbox == nil {
		panic("notify: NewNotifier: nil outbox")
	}
	if logger == nil {
		logger = slog.Default()
	}
	stopCtx, stop := context.WithCancel(context.Background())
	n := &Notifier{
		outbox:   outbox,
		logger:   logger,
		send:     make(chan struct{}, 1),
		stopCtx:  stopCtx,
		stop:     stop,
		seen:     make(map[string]struct{}),
		exited:   make(chan struct{}),
		progress: make(chan struct{}),
	}
	names := make(map[string]int)
	for i, s := range sinks {
		if s == nil {
			panic(fmt.Sprintf("notify: NewNotifier: sink %d is nil", i))
		}
		name := sinkName(s)
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s #%d", name, names[name])
		}
		n.workers = append(n.workers, &worker{sink: s, name: name, wake: make(chan struct{}, 1)})
	}
	n.running = len(n.workers)
	if n.running == 0 {
		close(n.exited)
	}
	for _, w := range n.workers {
		go n.work(w)
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

// Send records m in the outbox and queues it for every other sink.
//
// Before anything else Send validates m (Kind must be KindShutdownBroadcast
// or KindSessionInterrupted; Target and ShutdownID must not be empty) and
// fills defaults: a zero At becomes the current time, At is converted to
// UTC, and an empty Text becomes BroadcastText() or InterruptText(Target).
//
// A message whose ID was already accepted is ignored: Send returns nil and
// logs at DEBUG. If the outbox append fails, Send returns its error, no other
// sink is tried and the message is not marked as sent, so the caller may
// retry. Send returns ErrClosed after Close, and an error wrapping ctx.Err()
// if ctx ends while it waits for another Send.
func (n *Notifier) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	m = m.normalize(time.Now())
	id := m.ID()
	select {
	case n.send <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("notify: send %s: %w", id, ctx.Err())
	}
	defer func() { <-n.send }()

	n.mu.Lock()
	closed := n.closed
	_, dup := n.seen[id]
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if dup {
		n.logger.DebugContext(ctx, "notification already sent; ignored", m.attrs()...)
		return nil
	}

	// The outbox first: the message is on disk before any sink sees it.
	if err := n.outbox.Send(ctx, m); err != nil {
		return err
	}

	n.mu.Lock()
	n.seen[id] = struct{}{}
	n.sent = append(n.sent, m)
	if n.stopped {
		// Close gave up waiting for this Send; its workers are gone.
		n.mu.Unlock()
		for _, w := range n.workers {
			n.warnUndelivered(undelivered{msg: m, sink: w.name}, ErrClosed)
		}
		return ErrClosed
	}
	for _, w := range n.workers {
		w.queue = append(w.queue, item{msg: m, seq: w.next})
		w.next++
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	n.mu.Unlock()
	return nil
}

// Flush waits until every message queued before the call has been attempted
// on every sink (delivered, or failed and logged), or until ctx is done.
//
// If ctx ends first, Flush cancels the context of each of those attempts
// still running, logs every (message, sink) pair not yet delivered at WARN
// ("notification not delivered; kept in outbox", with the message id and the
// sink), gives up on them, and returns ctx.Err(). Flush never waits for a sink
// after ctx is done, even one that ignores its context.
func (n *Notifier) Flush(ctx context.Context) error {
	n.mu.Lock()
	targets := make([]uint64, len(n.workers))
	for i, w := range n.workers {
		targets[i] = w.next
	}
	lost, err := n.waitFlushedLocked(ctx, targets)
	n.mu.Unlock()
	for _, u := range lost {
		n.warnUndelivered(u, err)
	}
	return err
}

// waitFlushedLocked waits until flushedLocked(targets) or ctx is done; then it
// abandons what is left and returns it with ctx.Err(). n.mu must be held; it
// is released while waiting and held again on return.
func (n *Notifier) waitFlushedLocked(ctx context.Context, targets []uint64) ([]undelivered, error) {
	for !n.flushedLocked(targets) {
		progress := n.progress
		n.mu.Unlock()
		select {
		case <-progress:
			n.mu.Lock()
		case <-ctx.Done():
			n.mu.Lock()
			if n.flushedLocked(targets) {
				return nil, nil
			}
			return n.abandonLocked(targets), ctx.Err()
		}
	}
	return nil, nil
}

// flushedLocked reports whether every item of worker i with a seq below
// targets[i] is resolved: attempted, or abandoned. n.mu must be held.
func (n *Notifier) flushedLocked(targets []uint64) bool {
	for i, w := range n.workers {
		if f := w.inflight; f != nil && !f.abandoned && f.seq < targets[i] {
			return false
		}
		if len(w.queue) > 0 && w.queue[0].seq < targets[i] {
			return false
		}
	}
	return true
}

// abandonLocked gives up on every unresolved item of worker i with a seq
// below targets[i] (nil targets: every item): it cancels the attempt in
// flight and removes queued items. It returns what was given up on, for the
// caller to log after unlocking. n.mu must be held.
func (n *Notifier) abandonLocked(targets []uint64) []undelivered {
	var lost []undelivered
	for i, w := range n.workers {
		target := uint64(math.MaxUint64)
		if targets != nil {
			target = targets[i]
		}
		if f := w.inflight; f != nil && !f.abandoned && f.seq < target {
			f.abandoned = true
			f.cancel()
			lost = append(lost, undelivered{msg: f.msg, sink: w.name})
		}
		k := 0
		for k < len(w.queue) && w.queue[k].seq < target {
			lost = append(lost, undelivered{msg: w.queue[k].msg, sink: w.name})
			k++
		}
		clear(w.queue[:k])
		w.queue = w.queue[k:]
	}
	if len(lost) > 0 {
		n.progressLocked()
	}
	return lost
}

// progressLocked wakes every Flush waiting for progress. n.mu must be held.
func (n *Notifier) progressLocked() {
	close(n.progress)
	n.progress = make(chan struct{})
}

// warnUndelivered logs that u's message did not reach its sink.
func (n *Notifier) warnUndelivered(u undelivered, cause error) {
	n.logger.Warn("notification not delivered; kept in outbox",
		append(u.msg.attrs(), "sink", u.sink, "error", cause)...)
}

// Close flushes (see Flush), then stops the workers, cancelling any attempt
// still running, and closes the outbox. Sends after Close return ErrClosed.
//
// Close returns ctx.Err() if ctx ends before the queues are flushed or before
// the workers have exited; a worker whose sink honours its context exits
// promptly after Close returns. Otherwise Close returns the outbox's close
// error, or nil. Calling Close again only waits, up to ctx, for the workers
// to exit.
func (n *Notifier) Close(ctx context.Context) error {
	// Let a Send in progress finish so that Flush covers what it queues.
	acquired := false
	select {
	case n.send <- struct{}{}:
		acquired = true
	default:
		select {
		case n.send <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
	}
	n.mu.Lock()
	again := n.closed
	n.closed = true
	n.mu.Unlock()
	if acquired {
		<-n.send
	}
	if again {
		return n.waitWorkers(ctx)
	}

	err := n.Flush(ctx)

	// Stop the workers: cancel what is left and wake the idle ones.
	n.mu.Lock()
	n.stopped = true
	lost := n.abandonLocked(nil)
	n.stop()
	n.mu.Unlock()
	for _, u := range lost {
		n.warnUndelivered(u, ErrClosed)
	}

	if werr := n.waitWorkers(ctx); err == nil {
		err = werr
	}
	if cerr := n.outbox.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitWorkers waits until every worker has exited or ctx is done.
func (n *Notifier) waitWorkers(ctx context.Context) error {
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

// Sent returns the messages accepted so far (recorded in the outbox, with
// their defaults filled in), in the order they were accepted. Duplicates
// ignored by Send are not included.
func (n *Notifier) Sent() []Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Message(nil), n.sent...)
}

// work is the worker goroutine of w: it sends w's queue in order until the
// Notifier stops.
func (n *Notifier) work(w *worker) {
	defer func() {
		n.mu.Lock()
		if n.running--; n.running == 0 {
			close(n.exited)
		}
		n.mu.Unlock()
	}()
	for {
		n.mu.Lock()
		if n.stopped {
			n.mu.Unlock()
			return
		}
		if len(w.queue) == 0 {
			n.mu.Unlock()
			select {
			case <-w.wake:
			case <-n.stopCtx.Done():
			}
			continue
		}
		it := w.queue[0]
		w.queue[0] = item{}
		w.queue = w.queue[1:]
		ctx, cancel := context.WithCancel(n.stopCtx)
		f := &flight{item: it, cancel: cancel}
		w.inflight = f
		n.mu.Unlock()

		err := sendSafely(ctx, w.sink, it.msg)
		cancel()

		n.mu.Lock()
		abandoned := f.abandoned
		w.inflight = nil
		n.progressLocked()
		n.mu.Unlock()

		attrs := append(it.msg.attrs(), "sink", w.name)
		switch {
		case err == nil && !abandoned:
			n.logger.Debug("notification delivered", attrs...)
		case err == nil:
			n.logger.Info("notification delivered after its deadline", attrs...)
		case !abandoned:
			n.logger.Warn("notification not delivered; kept in outbox", append(attrs, "error", err)...)
		default:
			n.logger.Debug("abandoned notification attempt ended", append(attrs, "error", err)...)
		}
	}
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
