//go:build darwin

package marker

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// platformEpoch is the epoch when procRoot/sys/kernel/random/boot_id cannot
// be read. On macOS, for the default proc root only and when it does not
// exist, it is derived from the kernel boot time, which changes on reboot.
func platformEpoch(procRoot string) string {
	if procRoot != DefaultProcRoot {
		return ""
	}
	if _, err := os.Stat(procRoot); err == nil {
		return ""
	}
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil || tv.Sec <= 0 {
		return ""
	}
	return fmt.Sprintf("darwin-boottime:%d.%06d", tv.Sec, tv.Usec)
}
