package notify

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// Keep appends msgs to the pending file (WebhookOptions.PendingPath), for
// Redeliver at the next start, and fsyncs it. It does nothing without a
// PendingPath. The file is a JSON-lines file like the outbox, opened through
// homefile.Open: a FIFO or directory at the path is an error naming it,
// never a hang, and a torn last line left by a crash is cut first.
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
	return nil
}

// Redeliver sends the messages in the pending file (see Keep), up to
// Concurrency at once, each with the usual retries and the same
// Idempotency-Key as before, and then atomically rewrites the file with what
// is left: the messages not delivered, plus any kept meanwhile. A gateway
// calls it in the background at start. It returns how many messages were
// delivered and how many are left in the file.
//
// A crash between sending and rewriting sends the same messages again at
// the next start (at-least-once; receivers deduplicate by the key). A file
// holding more than MaxPending messages keeps only the newest MaxPending:
// the older ones are dropped, told to the Observer as ResultFailed, and
// reported in err. A missing file or an empty PendingPath is no error. A
// file that cannot be read or parsed (a FIFO or directory there, a corrupt
// line) is an error naming it, and nothing is sent or rewritten.
func (w *Webhook) Redeliver(ctx context.Context) (delivered, left int, err error) {
	path := w.opt.PendingPath
	if path == "" {
		return 0, 0, nil
	}
	w.pendMu.Lock()
	msgs, err := readPending(path)
	w.pendMu.Unlock()
	if err != nil {
		return 0, 0, err
	}
	msgs = dedupe(msgs)
	drop := make(map[string]bool)
	if extra := len(msgs) - MaxPending; extra > 0 {
		for _, m := range msgs[:extra] {
			drop[m.ID()] = true
			w.opt.Observer.observe(webhookLabel, ResultFailed)
		}
		msgs = msgs[extra:]
	}
	if len(msgs) == 0 && len(drop) == 0 {
		return 0, 0, nil
	}

	ok := w.deliverAll(ctx, msgs)
	for i, m := range msgs {
		if ok[i] {
			drop[m.ID()] = true
			delivered++
		}
	}

	w.pendMu.Lock()
	defer w.pendMu.Unlock()
	now, err := readPending(path) // what Keep added meanwhile too
	if err != nil {
		return delivered, len(msgs) - delivered, err
	}
	var rest []Message
	for _, m := range dedupe(now) {
		if !drop[m.ID()] {
			rest = append(rest, m)
		}
	}
	data, err := encodeLines(rest)
	if err == nil {
		err = homefile.WriteAtomic(path, data, 0o600)
	}
	if err != nil {
		return delivered, len(rest), fmt.Errorf("notify: redeliver: rewrite pending: %w", err)
	}
	if dropped := len(drop) - delivered; dropped > 0 {
		return delivered, len(rest), fmt.Errorf("notify: redeliver: %s: dropped the %d oldest pending messages (limit %d)",
			path, dropped, MaxPending)
	}
	return delivered, len(rest), nil
}

// deliverAll sends msgs, up to Concurrency at once, and reports which were
// delivered. It tells the Observer each outcome.
func (w *Webhook) deliverAll(ctx context.Context, msgs []Message) []bool {
	ok := make([]bool, len(msgs))
	var next atomic.Int64 // index of the next message to send
	var wg sync.WaitGroup
	for range min(w.opt.Concurrency, len(msgs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				permanent, err := w.deliver(ctx, msgs[i])
				switch {
				case err == nil:
					ok[i] = true
					w.opt.Observer.observe(webhookLabel, ResultDelivered)
				case permanent:
					w.opt.Observer.observe(webhookLabel, ResultFailed)
				default:
					w.opt.Observer.observe(webhookLabel, ResultUndelivered)
				}
			}
		})
	}
	wg.Wait()
	return ok
}

// readPending reads the pending file at path; a missing file holds nothing.
func readPending(path string) ([]Message, error) {
	msgs, err := readLines(path)
	if err != nil {
		if homefile.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("notify: read pending: %w", err)
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
