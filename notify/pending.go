package notify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// Keep appends msgs to the pending file (WebhookOptions.PendingPath) and
// fsyncs it, for RunRedelivery (or Redeliver at the next start); it does
// nothing without a PendingPath. When the file then holds more than
// PendingMax messages it is rewritten atomically without the oldest
// session pings (then older broadcasts; never the latest broadcast), each
// drop logged at WARN and told to the Observer as ResultDropped. The file
// is a JSON-lines file like the outbox, opened through homefile.Open: a
// FIFO or directory at the path is an error naming it, never a hang, and a
// torn last line left by a crash is cut first.
func (w *Webhook) Keep(msgs []Message) error {
	if w.opt.PendingPath == "" || len(msgs) == 0 {
		return nil
	}
	data, err := encodeLines(msgs)
	if err != nil {
		return err
	}
	w.pendMu.Lock()
	defer w.pendMu.Unlock()
	f, err := openAppend(w.opt.PendingPath)
	if err != nil {
		return fmt.Errorf("notify: keep for redelivery: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("notify: keep for redelivery: write %s: %w", w.opt.PendingPath, err)
	}
	if err := homefile.Sync(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("notify: keep for redelivery: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("notify: keep for redelivery: close %s: %w", w.opt.PendingPath, err)
	}
	n := w.pending.Load() + int64(len(msgs))
	w.storePending(n)
	if !w.pendKnown || n > int64(w.opt.PendingMax) {
		// Count the file once, and bring it back within the limit. The
		// messages are kept already: a failure here only delays the
		// limit to the next round, which applies it again.
		if _, err := w.loadLocked(); err != nil {
			w.opt.Logger.Warn("webhook pending record not counted or cut to its limit; the next redelivery round retries",
				"sink", w.String(), "pending_max", w.opt.PendingMax, "error", err)
		}
	}
	select {
	case w.wake <- struct{}{}:
	default: // RunRedelivery has a wake-up pending already
	}
	return nil
}

// Pending returns how many messages the pending file holds, as this
// Webhook last read or wrote it: call CountPending first, or it is 0
// until the first Keep, Redeliver or RunRedelivery round.
func (w *Webhook) Pending() int { return int(w.pending.Load()) }

// CountPending reads the pending file (without delivering anything), so
// that Pending is exact from now on rather than 0 until the first
// redelivery round: a gateway calls it at start, before it serves status.
// Without a PendingPath it does nothing.
func (w *Webhook) CountPending() error {
	if w.opt.PendingPath == "" {
		return nil
	}
	w.pendMu.Lock()
	defer w.pendMu.Unlock()
	if _, err := w.loadLocked(); err != nil {
		return fmt.Errorf("notify: count pending: %w", err)
	}
	return nil
}

// OnPendingChange makes fn be called each time the count Pending returns
// changes, up (Keep) or down (a redelivery round), so a status can show
// it at once. fn is called with the pending file's lock held: it must
// return at once and not call back into w. Call it before the first Keep
// or RunRedelivery; nil removes it.
func (w *Webhook) OnPendingChange(fn func()) {
	if fn == nil {
		w.onPending.Store(nil)
		return
	}
	w.onPending.Store(&fn)
}

// storePending records n as the pending file's count and tells the
// OnPendingChange function when it changed. The caller holds pendMu.
func (w *Webhook) storePending(n int64) {
	if w.pending.Swap(n) == n {
		return
	}
	if fn := w.onPending.Load(); fn != nil {
		(*fn)()
	}
}

// loadLocked reads the pending file, without repeated messages, and
// rewrites it atomically when it held repeats or more than PendingMax
// messages (dropping the oldest session pings first, see trimPending). It
// records the count and returns the messages left. The caller holds
// pendMu.
func (w *Webhook) loadLocked() ([]Message, error) {
	read, err := readPending(w.opt.PendingPath)
	if err != nil {
		return nil, err
	}
	msgs := dedupe(read)
	keep, dropped := trimPending(msgs, w.opt.PendingMax)
	if len(keep) != len(read) {
		if err := w.rewriteLocked(keep); err != nil {
			return nil, err
		}
		w.reportDropped(dropped)
	}
	w.storePending(int64(len(keep)))
	w.pendKnown = true
	return keep, nil
}

// rewriteLocked replaces the pending file atomically with msgs. The caller
// holds pendMu.
func (w *Webhook) rewriteLocked(msgs []Message) error {
	data, err := encodeLines(msgs)
	if err == nil {
		err = homefile.WriteAtomic(w.opt.PendingPath, data, 0o600)
	}
	if err != nil {
		return fmt.Errorf("rewrite pending: %w", err)
	}
	return nil
}

// reportDropped logs each dropped message at WARN and tells the Observer.
func (w *Webhook) reportDropped(dropped []Message) {
	for _, m := range dropped {
		w.opt.Logger.Warn("webhook message dropped: the pending record is full; it stays in the outbox",
			append(m.attrs(), "sink", w.String(), "pending_max", w.opt.PendingMax)...)
		w.opt.Observer.observe(webhookLabel, ResultDropped)
	}
}

// trimPending returns msgs (in file order, oldest first) cut to at most
// limit messages, and what it cut: the oldest session pings go first, then
// the older broadcasts; the latest broadcast is always kept (limit >= 1).
func trimPending(msgs []Message, limit int) (keep, dropped []Message) {
	extra := len(msgs) - max(limit, 1)
	if extra <= 0 {
		return msgs, nil
	}
	latest := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Kind == KindShutdownBroadcast {
			latest = i
			break
		}
	}
	drop := make([]bool, len(msgs))
	for pass := 0; pass < 2 && extra > 0; pass++ {
		for i, m := range msgs {
			if extra == 0 {
				break
			}
			isPing := m.Kind != KindShutdownBroadcast
			if drop[i] || i == latest || (pass == 0) != isPing {
				continue
			}
			drop[i] = true
			extra--
		}
	}
	keep = make([]Message, 0, len(msgs))
	for i, m := range msgs {
		if drop[i] {
			dropped = append(dropped, m)
		} else {
			keep = append(keep, m)
		}
	}
	return keep, dropped
}

// roundResult is the outcome of one redelivery round.
type roundResult struct {
	delivered int   // messages the receiver accepted
	left      int   // messages in the pending file afterwards
	failure   error // the first failed message's error, nil if none failed
}

// Redeliver makes one redelivery round: it sends the messages in the
// pending file (see Keep), up to Concurrency at once, each with the usual
// retries and the same Idempotency-Key as before, and then atomically
// rewrites the file with what is left: the messages not delivered, plus
// any kept meanwhile. It returns how many messages were delivered and how
// many are left in the file. RunRedelivery calls it in a loop.
//
// The round stops starting new messages at the first one that fails for
// a reason that may pass (the receiver is down, slow or answers 5xx), or
// after Concurrency permanent failures (a 4xx) with no delivery between
// them: a receiver that is away costs a round a few requests, not one per
// pending message. What was not tried stays for the next round.
//
// A crash between sending and rewriting sends the same messages again
// (at-least-once; receivers deduplicate by the key). A file holding more
// than PendingMax messages is first cut as Keep does. A missing file or an
// empty PendingPath is no error. A file that cannot be read or parsed (a
// FIFO or directory there, a corrupt line) is an error naming it, and
// nothing is sent or rewritten.
func (w *Webhook) Redeliver(ctx context.Context) (delivered, left int, err error) {
	res, err := w.round(ctx)
	return res.delivered, res.left, err
}

// round is Redeliver, also telling whether a message failed.
func (w *Webhook) round(ctx context.Context) (roundResult, error) {
	if w.opt.PendingPath == "" {
		return roundResult{}, nil
	}
	w.pendMu.Lock()
	msgs, err := w.loadLocked()
	w.pendMu.Unlock()
	if err != nil {
		return roundResult{}, fmt.Errorf("notify: redeliver: %w", err)
	}
	if len(msgs) == 0 {
		return roundResult{}, nil
	}

	ok, failure := w.deliverAll(ctx, msgs)
	res := roundResult{failure: failure}
	done := make(map[string]bool)
	for i, m := range msgs {
		if ok[i] {
			done[m.ID()] = true
			res.delivered++
		}
	}

	w.pendMu.Lock()
	defer w.pendMu.Unlock()
	now, err := readPending(w.opt.PendingPath) // what Keep added meanwhile too
	if err != nil {
		res.left = len(msgs) - res.delivered
		return res, fmt.Errorf("notify: redeliver: %w", err)
	}
	var rest []Message
	for _, m := range dedupe(now) {
		if !done[m.ID()] {
			rest = append(rest, m)
		}
	}
	res.left = len(rest)
	if res.delivered == 0 && len(rest) == len(now) {
		w.storePending(int64(len(rest)))
		return res, nil // nothing to rewrite
	}
	if err := w.rewriteLocked(rest); err != nil {
		return res, fmt.Errorf("notify: redeliver: %w", err)
	}
	w.storePending(int64(len(rest)))
	return res, nil
}

// deliverAll sends msgs, up to Concurrency at once, and reports which were
// delivered and the first failure. It stops starting new messages after a
// failure that may pass, or after Concurrency permanent failures since the
// last delivery (see Redeliver). It tells the Observer each outcome.
func (w *Webhook) deliverAll(ctx context.Context, msgs []Message) ([]bool, error) {
	ok := make([]bool, len(msgs))
	var (
		next    atomic.Int64 // index of the next message to send
		stop    atomic.Bool  // a failure ends the round: start no more
		strikes atomic.Int64 // permanent failures since the last delivery
		mu      sync.Mutex   // guards failure
		failure error
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if failure == nil {
			failure = err
		}
		mu.Unlock()
	}
	for range min(w.opt.Concurrency, len(msgs)) {
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				permanent, err := w.deliver(ctx, msgs[i])
				switch {
				case err == nil:
					ok[i] = true
					strikes.Store(0)
					w.opt.Observer.observe(webhookLabel, ResultDelivered)
				case permanent:
					fail(err)
					w.opt.Observer.observe(webhookLabel, ResultFailed)
					if strikes.Add(1) >= int64(w.opt.Concurrency) {
						stop.Store(true)
					}
				default:
					fail(err)
					w.opt.Observer.observe(webhookLabel, ResultUndelivered)
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return ok, failure
}

// RunRedelivery delivers the pending file while ctx lasts: a round at
// once, then, while messages are left, another after a backoff that
// doubles from RedeliverBackoff to RedeliverBackoffMax (with jitter), and
// after every Keep once the file was empty. It sleeps on a timer or on
// Keep's wake-up, never polls an empty file, and returns when ctx is done
// (the round in flight is cancelled; its deliveries are recorded). Without
// a PendingPath it returns at once. A gateway runs it for the life of its
// run; call it at most once at a time per Webhook.
func (w *Webhook) RunRedelivery(ctx context.Context) {
	if w.opt.PendingPath == "" {
		return
	}
	var (
		wait    time.Duration // before the next round
		backoff = w.opt.RedeliverBackoff
		failing bool // the last round failed (logged at WARN once)
	)
	for {
		if wait > 0 && sleep(ctx, jitter(wait)) != nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		res, err := w.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = res.failure
		}
		switch {
		case err != nil:
			wait, backoff = backoff, min(backoff*2, w.opt.RedeliverBackoffMax)
			attrs := []any{"sink", w.String(), "delivered", res.delivered, "left", res.left, "retry_in", wait, "error", err}
			if failing {
				w.opt.Logger.Debug("webhook redelivery failed again", attrs...)
			} else {
				w.opt.Logger.Warn("webhook redelivery failed; retrying with backoff", attrs...)
			}
			failing = true
			continue
		case res.delivered > 0 || failing:
			w.opt.Logger.Info("webhook redelivery", "sink", w.String(), "delivered", res.delivered, "left", res.left)
		}
		failing, backoff = false, w.opt.RedeliverBackoff
		if res.left > 0 {
			wait = backoff // kept during the round: the next round soon
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			// What Keep just added failed a moment ago: give the
			// receiver a backoff before the first round for it.
			wait = backoff
		}
	}
}

// jitter returns between half and all of d (equal jitter), so gateways
// that lost one receiver do not all retry it at the same instant.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}

// readPending reads the pending file at path; a missing file holds nothing.
func readPending(path string) ([]Message, error) {
	msgs, err := readLines(path)
	if err != nil {
		if homefile.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read pending: %w", err)
	}
	return msgs, nil
}

// dedupe returns msgs without repeated IDs, keeping the first of each.
func dedupe(msgs []Message) []Message {
	seen := make(map[string]bool, len(msgs))
	out := msgs[:0:0]
	for _, m := range msgs {
		if id := m.ID(); !seen[id] {
			seen[id] = true
			out = append(out, m)
		}
	}
	return out
}
