package marker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// DefaultProcRoot is the proc file system root EpochOf and CurrentEpoch
// read when given "".
const DefaultProcRoot = "/proc"

// maxProcFileSize bounds what EpochOf reads of a proc file.
const maxProcFileSize = 4096

// starttimeField is the 1-based field number of starttime in /proc/<pid>/stat.
const starttimeField = 22

// ErrNoEpoch is wrapped by the error of EpochOf and ProcessEpochOf when
// this instance's epoch cannot be computed; the error names the file that
// could not be read or parsed and why, for example
// "marker: epoch: /proc/1/stat: no starttime field (field 22)". The epoch is
// then "", which disables the staleness check (see the package
// documentation).
var ErrNoEpoch = errors.New("marker: no instance epoch")

// epochError is the error of EpochOf: "marker: epoch: <path>: <why>". It
// matches ErrNoEpoch and unwraps to the underlying error, if any.
type epochError struct {
	path string
	why  string
	err  error
}

// Error implements error.
func (e *epochError) Error() string { return "marker: epoch: " + e.path + ": " + e.why }

// Is reports whether target is ErrNoEpoch.
func (e *epochError) Is(target error) bool { return target == ErrNoEpoch }

// Unwrap returns the underlying error (nil for a parse failure).
func (e *epochError) Unwrap() error { return e.err }

// CurrentEpoch is EpochOf without the error: "" when the epoch cannot be
// computed. CurrentEpoch reads the files on every call; ProcessEpoch caches
// the result.
func CurrentEpoch(procRoot string) string {
	epoch, _ := EpochOf(procRoot)
	return epoch
}

// EpochOf computes the identity of this machine or container
// instantiation, "<boot_id>:<starttime>", from procRoot ("" means "/proc"):
// boot_id is procRoot/sys/kernel/random/boot_id with surrounding white space
// trimmed, and starttime is field 22 of procRoot/1/stat (the start time of
// PID 1 in clock ticks since boot), counted after the last ')' so that a
// command name containing spaces or parentheses is skipped correctly.
//
// A reboot changes boot_id; a restart of the container changes PID 1's start
// time; a supervisor respawn of only the gateway changes neither. It returns
// "" and an error wrapping ErrNoEpoch that names the file and the reason
// when a file is missing, unreadable or not a regular file (it is opened
// without blocking and without following a final symlink), boot_id is empty
// or contains white space, control characters or ':', or starttime is not
// a decimal number. On macOS see the package documentation. EpochOf reads
// the files on every call; ProcessEpochOf caches the result.
func EpochOf(procRoot string) (string, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	bootPath := filepath.Join(procRoot, "sys", "kernel", "random", "boot_id")
	boot, err := readProcFile(bootPath)
	if err != nil {
		if epoch := platformEpoch(procRoot); epoch != "" {
			return epoch, nil
		}
		return "", err
	}
	boot = bytes.TrimSpace(boot)
	if len(boot) == 0 {
		return "", &epochError{path: bootPath, why: "empty"}
	}
	for _, c := range boot {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return "", &epochError{path: bootPath, why: fmt.Sprintf("invalid character %q (white space, control, non-ASCII or ':')", c)}
		}
	}
	statPath := filepath.Join(procRoot, "1", "stat")
	stat, err := readProcFile(statPath)
	if err != nil {
		return "", err
	}
	start, why := starttime(stat)
	if why != "" {
		return "", &epochError{path: statPath, why: why}
	}
	return string(boot) + ":" + start, nil
}

// starttime extracts field 22 of a /proc/<pid>/stat line, or says why it
// cannot. Fields 1 and 2 are the pid and "(comm)"; the comm may contain
// anything, so fields are counted from the last ')', which ends field 2.
func starttime(stat []byte) (start, why string) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", "no ')' ending the command name"
	}
	fields := bytes.Fields(stat[i+1:])
	const idx = starttimeField - 3 // fields[0] is field 3 (state)
	if len(fields) <= idx {
		return "", fmt.Sprintf("no starttime field (field %d; the line has %d)", starttimeField, len(fields)+2)
	}
	f := fields[idx]
	if _, err := strconv.ParseUint(string(f), 10, 64); err != nil {
		return "", fmt.Sprintf("starttime field %q is not a decimal number", f)
	}
	return string(f), ""
}

// readProcFile reads at most maxProcFileSize bytes of the proc file at p
// (proc files report size 0, so the size cannot be trusted), opened as by
// homefile.Open: a FIFO, device, directory or symlink there is refused
// without blocking. The error is an *epochError naming p.
func readProcFile(p string) ([]byte, error) {
	data, _, _, err := homefile.ReadFile(p, maxProcFileSize)
	if err == nil {
		return data, nil
	}
	why := err.Error()
	var pe *fs.PathError
	switch {
	case errors.Is(err, homefile.ErrNotRegular):
		why = "not a regular file"
		if fi, lerr := os.Lstat(p); lerr == nil {
			why += " (" + homefile.Describe(p, fi) + ")"
		}
	case errors.As(err, &pe):
		why = pe.Err.Error() // the rest repeats the path
	}
	return nil, &epochError{path: p, why: why, err: err}
}

// epochResult is a cached EpochOf result.
type epochResult struct {
	epoch string
	err   error
}

// processEpochs caches ProcessEpochOf per proc root:
// string -> func() epochResult.
var processEpochs sync.Map

// ProcessEpoch is ProcessEpochOf without the error: "" when the epoch
// cannot be computed.
func ProcessEpoch(procRoot string) string {
	epoch, _ := ProcessEpochOf(procRoot)
	return epoch
}

// ProcessEpochOf returns EpochOf(procRoot), computed once per process per
// procRoot and cached (the error too), so every caller in one process
// agrees even if the proc files change, and ProcessEpoch returns the same
// epoch. It is safe for concurrent use.
func ProcessEpochOf(procRoot string) (string, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	key := filepath.Clean(procRoot)
	f, ok := processEpochs.Load(key)
	if !ok {
		f, _ = processEpochs.LoadOrStore(key, sync.OnceValue(func() epochResult {
			epoch, err := EpochOf(key)
			return epochResult{epoch, err}
		}))
	}
	r := f.(func() epochResult)()
	return r.epoch, r.err
}
