//go:build !linux

package main

import "syscall"

// childAttr puts a child in its own process group (so a kill reaches its
// own children too). Only Linux has a parent-death signal.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
