package agent

import "syscall"

// processGroup puts an exec agent in its own process group, so an
// interrupt kills its children too, and has the kernel send its shell
// SIGTERM when the gateway dies, even by kill -9 (the shell's trap then
// kills the whole group: see execScript). The parent-death signal is tied
// to the OS thread that started the child; Go only retires a thread when
// a goroutine exits while locked to it, which the gateway never does.
func processGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
