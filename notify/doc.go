// Package notify delivers the notifications a quiesce gateway sends when it
// shuts down: one home-channel broadcast that the gateway is going away
// (unless suppressed), and one ping per session whose turn was
// force-interrupted.
//
// The gateway decides when and to whom; notify decides how. Every message
// goes first to the [Outbox], a JSON-lines file that is appended to and
// fsynced before any other sink is tried, so the outbox is the durable record
// of everything the gateway meant to say. The [Notifier] then hands the
// message to every other [Sink] ([Log], [Webhook], or a test [Recorder]) on
// one background worker per sink, so a slow or dead webhook never makes
// [Notifier.Send] wait.
//
// Two promises follow from the design contract (invariant I6):
//
//   - notify never blocks shutdown past its deadline: [Notifier.Flush] and
//     [Notifier.Close] return when their context is done, and the context a
//     worker passes to its sink is cancelled at that moment;
//   - notify never drops a message silently: a message that a sink did not
//     accept by the deadline, or that a sink refused, is logged at WARN with
//     its [Message.ID], and it is already in the outbox.
//
// Messages are deduplicated by [Message.ID] (shutdown id, kind and target),
// so a gateway that asks twice still sends each notification once.
//
// Caveats: the outbox assumes one writer per file (one gateway per home).
// A webhook may receive a message more than once when a try times out after
// the receiver accepted it; the Idempotency-Key header carries the message ID
// so receivers can deduplicate.
package notify
