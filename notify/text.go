package notify

import "fmt"

// BroadcastText returns the home-channel broadcast sent when the gateway
// shuts down.
func BroadcastText() string {
	return "The gateway is shutting down for a restart and will be back shortly. " +
		"Messages sent while it is away may be refused; please resend them once it is back."
}

// InterruptText returns the ping sent to session when its running task was
// cut off by a gateway shutdown.
func InterruptText(session string) string {
	return fmt.Sprintf("Your task in session %s was cut off because the gateway shut down before it finished. "+
		"Send a new message when the gateway is back to resume.", session)
}

// RefusalText returns the message a client reads when the gateway refuses a
// new turn because it is draining (the body of a 503).
func RefusalText() string {
	return "The gateway is draining for maintenance and is not starting new tasks right now. " +
		"Please resend your message shortly."
}
