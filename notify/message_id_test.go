package notify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestMessageIDNeverShared: messages that differ in shutdown id, kind or
// target never share an id, however their parts are spelled: a part that
// contains the separator, another part's text or an escape sequence
// cannot make two ids equal.
func TestMessageIDNeverShared(t *testing.T) {
	msg := func(sd string, kind notify.Kind, target string) notify.Message {
		return notify.Message{Kind: kind, Target: target, ShutdownID: sd}
	}
	ping, home := notify.KindSessionInterrupted, notify.KindShutdownBroadcast
	for _, tc := range []struct {
		name string
		a, b notify.Message
	}{
		{"kind and separators inside the shutdown id", msg("x/"+string(ping)+"/y", ping, "z"), msg("x", ping, "y/"+string(ping)+"/z")},
		{"kind inside the target", msg("a/"+string(home), home, "b"), msg("a", home, string(home)+"/b")},
		{"escaped separator spelled out", msg("sd", ping, "a%2Fb"), msg("sd", ping, "a/b")},
		{"empty parts", msg("sd", ping, "/"), msg("sd/", ping, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.NotEqual(t, tc.a.ID(), tc.b.ID())
		})
	}
}
