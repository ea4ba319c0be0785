package notify

// Observer is told the outcome of each notification on each sink, for a
// metric such as notifications_total{sink,result}. sink is a short, stable
// label: "outbox", "log", "webhook", "recorder", or for another Sink its
// String() or type name. result is one of the Result constants. An Observer
// is called from many goroutines at once and on the delivery path, so it
// must be safe for concurrent use and fast (a counter increment). The
// strings it is given are constants or computed once, so calling it does not
// allocate. A nil Observer is a no-op.
type Observer func(sink, result string)

// The results an Observer is told.
const (
	// ResultDelivered: the sink accepted the message.
	ResultDelivered = "delivered"
	// ResultRetried: one try failed and another will be made (webhook).
	ResultRetried = "retried"
	// ResultUndelivered: the message was given up on because a deadline
	// passed or the Notifier closed while it was queued or in flight; it is
	// in the outbox, and a Keeper sink kept it for later.
	ResultUndelivered = "undelivered"
	// ResultFailed: the sink returned an error (for the webhook: a
	// permanent failure, or retries exhausted), or the outbox append failed.
	ResultFailed = "failed"
	// ResultDropped: the webhook's pending record was full
	// (WebhookOptions.PendingMax) and the message was dropped from it,
	// logged at WARN; it is still in the outbox.
	ResultDropped = "dropped"
)

// observe calls o unless it is nil.
func (o Observer) observe(sink, result string) {
	if o != nil {
		o(sink, result)
	}
}
