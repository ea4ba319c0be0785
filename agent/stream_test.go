package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEchoStreamsWordByWord: with a delta listener the echo agent emits
// the reply word by word, each with the spaces after it.
func TestEchoStreamsWordByWord(t *testing.T) {
	var deltas []string
	reply, err := NewEcho(0).Run(context.Background(), Turn{Text: "one two  three", OnDelta: func(d string) { deltas = append(deltas, d) }})
	require.NoError(t, err)
	assert.Equal(t, "one two  three", reply)
	assert.Equal(t, []string{"one ", "two  ", "three"}, deltas)
}

// TestExecStreamsEachStdoutLine: each stdout line of an exec agent is a
// delta; the reply is all of them.
func TestExecStreamsEachStdoutLine(t *testing.T) {
	var deltas []string
	reply, err := NewExec(`echo first; echo second; printf last`, quietLogger()).Run(context.Background(),
		Turn{Session: "s", Text: "x", OnDelta: func(d string) { deltas = append(deltas, d) }})
	require.NoError(t, err)
	assert.Equal(t, "first\nsecond\nlast", reply)
	assert.Equal(t, []string{"first\n", "second\n", "last"}, deltas)
}

// TestExecMessageNeverReachesTheShell: the message is only on stdin, so
// shell syntax in it runs nothing; the environment carries the ids.
func TestExecMessageNeverReachesTheShell(t *testing.T) {
	dir := t.TempDir()
	reply, err := NewExec(`cd `+dir+` && cat && echo " $QUIESCE_SESSION $QUIESCE_TURN_ID $QUIESCE_EVENT_ID"`, quietLogger()).Run(
		context.Background(), Turn{Session: "s1", Text: "$(touch pwned) `touch pwned2`", TurnID: "t1", EventID: "e1"})
	require.NoError(t, err)
	assert.Equal(t, "$(touch pwned) `touch pwned2` s1 t1 e1", reply)
	assert.NoFileExists(t, dir+"/pwned")
	assert.NoFileExists(t, dir+"/pwned2")
}
