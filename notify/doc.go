// Package notify delivers the notifications a quiesce gateway sends when it
// shuts down: one home-channel broadcast that the gateway is going away
// (unless suppressed), and one ping per session whose turn was
// force-interrupted.
//
// The gateway decides when and to whom; notify decides how. Every message
// goes first to the [Outbox], a JSON-lines file that is appended to and
// fsynced before any other sink is tried, so the outbox is the durable record
// of everything the gateway meant to say. The [Notifier] then hands the
// message to every other [Sink] ([Log], [Webhook], or a test [Recorder]),
// each on its own goroutines, so a slow or dead sink never makes
// [Notifier.Send] wait, and one failing sink, a full disk under the outbox
// included, never holds back the others.
//
// Three promises follow from the design contract (invariant I6):
//
//   - notify never blocks shutdown past its deadline: [Notifier.Flush] and
//     [Notifier.Close] return when their context is done, and the context a
//     sink was given is cancelled at that moment;
//   - notify never drops a message silently: a message that a sink did not
//     accept by the deadline, or that a sink refused, is logged at WARN with
//     its [Message.ID] and sink, exactly once, and it is in the outbox;
//   - what the webhook could not deliver is kept: with
//     [WebhookOptions.PendingPath] set it is appended to that file (fsync)
//     and [Webhook.RunRedelivery] sends it while the gateway runs, with
//     capped backoff and the same Idempotency-Key. The file holds at most
//     [WebhookOptions.PendingMax] messages; past it the oldest session
//     pings are dropped first, never the latest broadcast, each drop
//     logged at WARN and counted ([ResultDropped]).
//
// Messages are deduplicated by [Message.ID] (shutdown id, kind and target),
// so a gateway that asks twice still sends each notification once. An
// [Observer] in [NotifierOptions] and [WebhookOptions] counts outcomes by
// sink and result, for a metric.
//
// Caveats: the outbox and pending files assume one writer per file (one
// gateway per home). A webhook may receive a message more than once (a try
// that timed out after the receiver accepted it, a crash before a
// redelivery round rewrote its file); the Idempotency-Key header carries the message ID so
// receivers can deduplicate. A [ConcurrentSink] such as the webhook may
// receive messages out of order.
//
// # Concurrency
//
// Every mutex, atomic, goroutine and channel in the package, and why:
//
//   - Notifier.mu (sync.Mutex): serialises Send so that deduplication, the
//     outbox, Sent and every sink queue see one order; guards seen and sent.
//   - Notifier.closed (atomic.Bool): Close refuses new Sends at once, without
//     waiting for mu, which a Send holds across an outbox fsync.
//   - the sink goroutines, one per sink (Concurrency() for a ConcurrentSink,
//     eight for the webhook): each takes its sink's deliveries one at a
//     time, so Send never waits on a sink and sinks never wait on each other.
//   - sinkQueue.mu (sync.Mutex, one per sink): guards that sink's queue
//     (not yet taken), its open deliveries (what Flush waits for), its
//     stop flag and the deadline Close sets.
//   - sinkQueue.wake (channel, capacity 1): enqueue wakes an idle sink
//     goroutine without blocking; a goroutine that takes a delivery while
//     more are queued passes the wake-up on.
//   - sinkQueue.stop (channel, closed once by Close): wakes every idle sink
//     goroutine so it returns.
//   - sinkQueue.exits (one channel per sink goroutine, closed when it
//     returns): Close waits for them with a ctx, which a sync.WaitGroup
//     cannot do.
//   - delivery.claimed (atomic.Bool, one per message per sink): the sink
//     goroutine whose attempt ended and a Flush or Close giving up race to
//     set it; the winner alone logs, counts and keeps the message, so each
//     (message, sink) is resolved exactly once.
//   - delivery.resolved (channel, closed once by the winner, after it
//     logged): what Flush waits on, with its ctx.
//   - delivery.ctx (one per message per sink, cancelled when it is given
//     up on): ends the attempt in flight; after Close an attempt also
//     carries Close's deadline.
//   - Outbox.mu (one-slot channel): serialises appends to the file; a channel
//     so that an Outbox.Send waiting behind a slow fsync honours its ctx.
//   - Webhook.pendMu (sync.Mutex): serialises Keep's appends to the pending
//     file with Redeliver's reads and rewrites of it.
//   - Webhook.pending (atomic.Int64): the pending file's count, for
//     Pending (a status read) without waiting for pendMu.
//   - Webhook.onPending (atomic.Pointer): the OnPendingChange function,
//     set while a Notifier's goroutine may be calling Keep.
//   - Webhook.wake (channel, capacity 1): Keep tells RunRedelivery that
//     something was added, without blocking; RunRedelivery sleeps on it
//     (or on a backoff timer) instead of polling.
//   - Redeliver's goroutines (up to Concurrency, a sync.WaitGroup, an
//     atomic.Int64 index, an atomic.Bool stop flag, an atomic.Int64 count
//     of permanent failures and a mutex for the first error): send the
//     pending messages in parallel and end the round early when the
//     receiver fails; all have exited when Redeliver returns.
//   - RunRedelivery: runs on its caller's goroutine (a gateway's
//     background work) and returns when its ctx is done.
//   - the timer in the Webhook's default Sleep: the wait between tries,
//     stopped early when ctx is done; RunRedelivery waits between rounds
//     on the same kind of timer.
//   - Recorder.mu (sync.Mutex): guards what a test Recorder recorded.
package notify
