package main

import "syscall"

// childAttr puts a child in its own process group (so a kill reaches its
// own children too) and has the kernel kill it if the drill dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
