package notify

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Kind names what a notification is about.
type Kind string

// The kinds of notification a gateway sends.
const (
	// KindShutdownBroadcast is the home-channel broadcast that the gateway is
	// shutting down. Its target is HomeTarget.
	KindShutdownBroadcast Kind = "shutdown_broadcast"
	// KindSessionInterrupted is the ping to one session whose turn was
	// force-interrupted by a shutdown. Its target is the session id.
	KindSessionInterrupted Kind = "session_interrupted"
)

// HomeTarget is the Target of a message for the home channel.
const HomeTarget = "home"

// Message is one notification. Encoded as JSON it is one object:
//
//	{"at":"2026-11-23T10:00:00.123Z","kind":"session_interrupted","target":"s1","text":"...","shutdown_id":"..."}
//
// At is written in UTC with RFC 3339 nanosecond precision.
type Message struct {
	// At is when the gateway decided to send the message.
	At time.Time `json:"at"`
	// Kind is KindShutdownBroadcast or KindSessionInterrupted.
	Kind Kind `json:"kind"`
	// Target is HomeTarget or a session id.
	Target string `json:"target"`
	// Text is what the recipient reads.
	Text string `json:"text"`
	// ShutdownID identifies the shutdown that caused the message.
	ShutdownID string `json:"shutdown_id"`
}

// ID returns the message's stable deduplication key, built from ShutdownID,
// Kind and Target (not At or Text): "<shutdown_id>/<kind>/<target>", each part
// path-escaped so that two different messages never share an ID.
func (m Message) ID() string {
	return url.PathEscape(m.ShutdownID) + "/" + url.PathEscape(string(m.Kind)) + "/" + url.PathEscape(m.Target)
}

// validate reports why m cannot be sent, or nil.
func (m Message) validate() error {
	switch {
	case m.Kind != KindShutdownBroadcast && m.Kind != KindSessionInterrupted:
		return fmt.Errorf("notify: invalid message: unknown kind %q", m.Kind)
	case m.Target == "":
		return errors.New("notify: invalid message: empty target")
	case m.ShutdownID == "":
		return errors.New("notify: invalid message: empty shutdown_id")
	}
	return nil
}

// normalize fills the defaults Notifier.Send documents: At now in UTC, the
// project's text for the kind.
func (m Message) normalize(now time.Time) Message {
	if m.At.IsZero() {
		m.At = now
	}
	m.At = m.At.UTC()
	if m.Text == "" {
		switch m.Kind {
		case KindShutdownBroadcast:
			m.Text = BroadcastText()
		case KindSessionInterrupted:
			m.Text = InterruptText(m.Target)
		}
	}
	return m
}

// attrs returns the key/value pairs that identify m in a log line.
func (m Message) attrs() []any {
	return []any{"id", m.ID(), "kind", string(m.Kind), "target", m.Target, "shutdown_id", m.ShutdownID}
}
