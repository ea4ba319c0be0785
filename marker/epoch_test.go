package marker_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestEpochOfNamesTheFile: when the epoch cannot be computed, EpochOf
// returns "" and an error wrapping ErrNoEpoch that names the proc file and
// says what is wrong with it, never blocking on a FIFO; CurrentEpoch and
// ProcessEpoch keep returning "".
func TestEpochOfNamesTheFile(t *testing.T) {
	const bootRel, statRel = "sys/kernel/random/boot_id", "1/stat"
	cases := []struct {
		name  string
		setup func(t *testing.T, root string)
		file  string // relative to the root ("" for a missing root: boot_id)
		why   string // a regexp the error must match after the path
	}{
		{"missing root", func(t *testing.T, root string) { require.NoError(t, os.RemoveAll(root)) }, bootRel, `: no such file or directory$`},
		{"missing boot_id", func(t *testing.T, root string) { require.NoError(t, os.Remove(filepath.Join(root, bootRel))) }, bootRel, `: no such file or directory$`},
		{"empty boot_id", func(t *testing.T, root string) { writeProcFile(t, root, bootRel, " \n") }, bootRel, `: empty$`},
		{"boot_id with a space", func(t *testing.T, root string) { writeProcFile(t, root, bootRel, "a b\n") }, bootRel, `: invalid character ' '`},
		{"boot_id with a colon", func(t *testing.T, root string) { writeProcFile(t, root, bootRel, "a:b\n") }, bootRel, `: invalid character ':'`},
		{"boot_id binary junk", func(t *testing.T, root string) { writeProcFile(t, root, bootRel, "\x00\xff\n") }, bootRel, `: invalid character '\\x00'`},
		{"boot_id is a FIFO", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, bootRel)))
			require.NoError(t, syscall.Mkfifo(filepath.Join(root, bootRel), 0o600))
		}, bootRel, `: not a regular file \(a FIFO\)$`},
		{"boot_id is a symlink to a device", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, bootRel)))
			require.NoError(t, os.Symlink("/dev/zero", filepath.Join(root, bootRel)))
		}, bootRel, `: not a regular file \(a symlink to "/dev/zero"\)$`},
		{"missing stat", func(t *testing.T, root string) { require.NoError(t, os.Remove(filepath.Join(root, statRel))) }, statRel, `: no such file or directory$`},
		{"stat is a directory", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, statRel)))
			require.NoError(t, os.Mkdir(filepath.Join(root, statRel), 0o755))
		}, statRel, `: not a regular file \(a directory\)$`},
		{"stat is a FIFO", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, statRel)))
			require.NoError(t, syscall.Mkfifo(filepath.Join(root, statRel), 0o600))
		}, statRel, `: not a regular file \(a FIFO\)$`},
		{"empty stat", func(t *testing.T, root string) { writeProcFile(t, root, statRel, "") }, statRel, `: no '\)' ending the command name$`},
		{"junk stat", func(t *testing.T, root string) { writeProcFile(t, root, statRel, "not a stat line at all\n") }, statRel, `: no '\)' ending the command name$`},
		{"short stat", func(t *testing.T, root string) { writeProcFile(t, root, statRel, "1 (init) S 0 1 1 0\n") }, statRel, `: no starttime field \(field 22; the line has 7\)$`},
		{"non-numeric starttime", func(t *testing.T, root string) {
			writeProcFile(t, root, statRel, regexp.MustCompile(` 5 0 0`).ReplaceAllString(statLine("init", 5), " x5 0 0"))
		}, statRel, `: starttime field "x5" is not a decimal number$`},
		{"negative starttime", func(t *testing.T, root string) {
			writeProcFile(t, root, statRel, regexp.MustCompile(` 5 0 0`).ReplaceAllString(statLine("init", 5), " -5 0 0"))
		}, statRel, `: starttime field "-5" is not a decimal number$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := fakeProc(t, "boot-x", 5)
			c.setup(t, root)
			var epoch string
			var err error
			callWithDeadline(t, "EpochOf", func() { epoch, err = marker.EpochOf(root) })
			require.Empty(t, epoch)
			require.Error(t, err)
			require.True(t, errors.Is(err, marker.ErrNoEpoch), "errors.Is(ErrNoEpoch): %v", err)
			p := filepath.Join(root, c.file)
			require.Regexp(t, "^"+regexp.QuoteMeta("marker: epoch: "+p)+c.why, err.Error())
			require.Empty(t, marker.CurrentEpoch(root))

			pe, perr := marker.ProcessEpochOf(root)
			require.Empty(t, pe)
			require.Equal(t, err.Error(), perr.Error(), "ProcessEpochOf caches the same error")
			require.Empty(t, marker.ProcessEpoch(root))
		})
	}
}

// TestEpochOfUnwrapsTheCause: a read error stays inspectable.
func TestEpochOfUnwrapsTheCause(t *testing.T) {
	_, err := marker.EpochOf(filepath.Join(t.TempDir(), "no-proc"))
	require.ErrorIs(t, err, marker.ErrNoEpoch)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestEpochOfAndProcessEpochOf: a good proc root gives the epoch and no
// error; ProcessEpochOf caches both, agreeing with ProcessEpoch.
func TestEpochOfAndProcessEpochOf(t *testing.T) {
	proc := fakeProc(t, "boot-ok", 77)
	epoch, err := marker.EpochOf(proc)
	require.NoError(t, err)
	require.Equal(t, "boot-ok:77", epoch)

	cached, err := marker.ProcessEpochOf(proc)
	require.NoError(t, err)
	require.Equal(t, epoch, cached)
	require.NoError(t, os.RemoveAll(proc))
	cached, err = marker.ProcessEpochOf(proc + "/")
	require.NoError(t, err, "cached per cleaned proc root")
	require.Equal(t, epoch, cached)
	require.Equal(t, epoch, marker.ProcessEpoch(proc))
	_, err = marker.EpochOf(proc)
	require.ErrorIs(t, err, marker.ErrNoEpoch, "EpochOf reads anew")

	if _, err := os.Stat("/proc/1/stat"); err == nil {
		real, err := marker.EpochOf("")
		require.NoError(t, err, "this machine's /proc gives an epoch")
		require.NotEmpty(t, real)
	}
}
