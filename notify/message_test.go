package notify_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

func TestMessageID(t *testing.T) {
	base := ping("sd1", "s1")
	tests := []struct {
		name string
		a, b notify.Message
		same bool
	}{
		{"same message", base, base, true},
		{"time and text ignored", base, func() notify.Message {
			m := base
			m.At = m.At.Add(time.Hour)
			m.Text = "other"
			return m
		}(), true},
		{"other target", base, ping("sd1", "s2"), false},
		{"other shutdown", base, ping("sd2", "s1"), false},
		{"other kind", broadcast("sd1"), func() notify.Message {
			m := broadcast("sd1")
			m.Kind = notify.KindSessionInterrupted
			return m
		}(), false},
		{"separator in parts", ping("a/b", "c"), ping("a", "b/c"), false},
		{"escape in parts", ping("a%2Fb", "c"), ping("a/b", "c"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.a.ID() == tt.b.ID()
			assert.Equalf(t, tt.same, got, "%q == %q: got %v, want %v", tt.a.ID(), tt.b.ID(), got, tt.same)
		})
	}
}

func TestMessageJSON(t *testing.T) {
	b, err := json.Marshal(ping("sd1", "s1"))
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(b, &obj))
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range obj {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"at", "kind", "shutdown_id", "target", "text"}
	assert.Truef(t, slices.Equal(keys, want), "got keys %v, want %v", keys, want)
	assert.Equal(t, "2026-11-23T10:00:00.123456789Z", obj["at"], "at")
}

func TestTexts(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"broadcast", notify.BroadcastText(), []string{"shutting down", "back"}},
		{"interrupt", notify.InterruptText("sess-42"), []string{"sess-42", "cut off", "new message", "resume"}},
		{"refusal", notify.RefusalText(), []string{"draining", "maintenance", "resend"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				assert.Containsf(t, tt.text, w, "%q does not contain %q", tt.text, w)
			}
		})
	}
}

func TestLog(t *testing.T) {
	logger, logs := newLogger()
	l := notify.NewLog(logger)
	m := ping("sd1", "s1")
	require.NoErrorf(t, l.Send(context.Background(), m), "Send")
	recs := logs.find(t, slog.LevelInfo, "notification", m.ID())
	require.Lenf(t, recs, 1, "got %d INFO lines for %s, want 1: %v", len(recs), m.ID(), logs.records(t))
	for k, want := range map[string]string{"kind": "session_interrupted", "target": "s1", "shutdown_id": "sd1", "text": m.Text} {
		got := recs[0][k]
		assert.Equalf(t, want, got, "%s: got %v, want %v", k, got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Error(t, l.Send(ctx, m), "Send with a cancelled ctx: got nil error")
	got := len(logs.records(t))
	assert.Equalf(t, 1, got, "got %d log lines, want 1", got)
}
