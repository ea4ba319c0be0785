package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestRetryAfterSecondsRoundsUp: Retry-After is whole seconds, rounded up
// (a client told 1 s when the server asked for 1.5 s comes back too early),
// and never below 1.
func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {100 * time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2},
		{4*time.Second + time.Millisecond, 5}, {5 * time.Second, 5},
	} {
		assert.Equal(t, tt.want, retryAfterSeconds(tt.d), "retryAfterSeconds(%v)", tt.d)
	}
}
