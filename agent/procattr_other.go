//go:build !linux

package agent

import "syscall"

// processGroup puts an exec agent in its own process group, so an
// interrupt kills its children too. There is no parent-death signal
// outside Linux, so there an agent may outlive a gateway killed by
// kill -9.
func processGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
