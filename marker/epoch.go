package marker

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// DefaultProcRoot is the proc file system root CurrentEpoch reads when
// given "".
const DefaultProcRoot = "/proc"

// maxProcFileSize bounds what CurrentEpoch reads of a proc file.
const maxProcFileSize = 4096

// starttimeField is the 1-based field number of starttime in /proc/<pid>/stat.
const starttimeField = 22

// CurrentEpoch computes the identity of this machine or container
// instantiation, "<boot_id>:<starttime>", from procRoot ("" means "/proc"):
// boot_id is procRoot/sys/kernel/random/boot_id with surrounding white space
// trimmed, and starttime is field 22 of procRoot/1/stat (the start time of
// PID 1 in clock ticks since boot), counted after the last ')' so that a
// command name containing spaces or parentheses is skipped correctly.
//
// A reboot changes boot_id; a restart of the container changes PID 1's start
// time; a supervisor respawn of only the gateway changes neither. It returns
// "" when a file is missing or unreadable, boot_id is empty or contains
// white space, control characters or ':', or starttime is not a decimal
// number. On macOS see the package documentation. CurrentEpoch reads the
// files on every call; ProcessEpoch caches the result.
func CurrentEpoch(procRoot string) string {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	boot, err := readSmall(filepath.Join(procRoot, "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return platformEpoch(procRoot)
	}
	boot = bytes.TrimSpace(boot)
	if len(boot) == 0 {
		return ""
	}
	for _, c := range boot {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return ""
		}
	}
	stat, err := readSmall(filepath.Join(procRoot, "1", "stat"))
	if err != nil {
		return ""
	}
	start, ok := starttime(stat)
	if !ok {
		return ""
	}
	return string(boot) + ":" + start
}

// starttime extracts field 22 of a /proc/<pid>/stat line. Fields 1 and 2
// are the pid and "(comm)"; the comm may contain anything, so fields are
// counted from the last ')', which ends field 2.
func starttime(stat []byte) (string, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", false
	}
	fields := bytes.Fields(stat[i+1:])
	const idx = starttimeField - 3 // fields[0] is field 3 (state)
	if len(fields) <= idx {
		return "", false
	}
	f := fields[idx]
	if _, err := strconv.ParseUint(string(f), 10, 64); err != nil {
		return "", false
	}
	return string(f), true
}

// readSmall reads at most maxProcFileSize bytes of the file at p (proc files
// report size 0, so the size cannot be trusted).
func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxProcFileSize))
}

// processEpochs caches ProcessEpoch per proc root: string -> func() string.
var processEpochs sync.Map

// ProcessEpoch returns CurrentEpoch(procRoot), computed once per process
// per procRoot and cached, so every caller in one process agrees even if
// the proc files change. It is safe for concurrent use.
func ProcessEpoch(procRoot string) string {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	key := filepath.Clean(procRoot)
	if f, ok := processEpochs.Load(key); ok {
		return f.(func() string)()
	}
	f, _ := processEpochs.LoadOrStore(key, sync.OnceValue(func() string { return CurrentEpoch(key) }))
	return f.(func() string)()
}
