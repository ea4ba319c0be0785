package gateway

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplayMovesARepeatedRejectionOnce: an event the rejected file holds
// twice is moved back to the spool once, so it runs once; the rejected
// file is left empty of it.
func TestReplayMovesARepeatedRejectionOnce(t *testing.T) {
	f := newSpoolFixture(t)
	e := event("s", "twice")
	other := event("t", "once")
	var buf bytes.Buffer
	for _, ev := range []spoolEntry{e, other, e} {
		line, err := json.Marshal(rejectedRecord{At: time.Now().UTC(), Reason: "test", Event: &ev})
		require.NoError(t, err)
		buf.Write(append(line, '\n'))
	}
	require.NoError(t, os.WriteFile(f.rejected, buf.Bytes(), 0o600))
	s := f.open(t)

	res, err := s.replayRejected()
	require.NoError(t, err)
	assert.Equal(t, 2, res.Moved)
	assert.Equal(t, []string{e.ID, other.ID}, res.EventIDs)
	assert.Equal(t, []string{e.ID, other.ID}, s.ids(), "each event pending once")
	require.NoError(t, s.close())

	s = f.open(t)
	assert.Equal(t, []string{e.ID, other.ID}, s.ids(), "each event pending once after a restart")
	rejected, err := os.ReadFile(f.rejected)
	require.NoError(t, err)
	assert.Empty(t, rejected)
}
