//go:build !darwin

package marker

// platformEpoch is the epoch when procRoot/sys/kernel/random/boot_id cannot
// be read: none outside macOS.
func platformEpoch(string) string { return "" }
