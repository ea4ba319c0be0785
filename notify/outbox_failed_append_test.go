package notify_test

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestOutboxFailedAppendLeavesNoPartialLine: an append that fails part-way
// (here EFBIG: the file may grow only a few bytes under RLIMIT_FSIZE) is
// cut back to the last whole line, so the next append starts a line of
// its own and every message reported sent reads back.
func TestOutboxFailedAppendLeavesNoPartialLine(t *testing.T) {
	o, path := mustOpenOutbox(t)
	ctx := context.Background()
	require.NoError(t, o.Send(ctx, ping("sd1", "s1")))
	fi, err := os.Stat(path)
	require.NoError(t, err)

	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(fi.Size()) + 16, Max: old.Max}))
	err = o.Send(ctx, ping("sd1", "s2"))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err, "the append past the file-size limit fails")

	after, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), after.Size(), "the partial line is cut off")
	require.NoError(t, o.Send(ctx, ping("sd1", "s3")))
	msgs, err := notify.ReadOutbox(path)
	require.NoError(t, err)
	require.Equal(t, []string{ping("sd1", "s1").ID(), ping("sd1", "s3").ID()}, ids(msgs))
}
