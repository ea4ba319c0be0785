// Package fakeproc lays out a directory like /proc for tests: the two
// files the instance epoch is computed from (docs/MARKER.md). Changing PID 1's starttime or the boot id simulates a machine
// or container restart; rewriting the same values, a supervisor respawn.
package fakeproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Comm is the command name Write gives PID 1: spaces and parentheses, so
// readers must parse after the last ')'.
const Comm = "my init (x) ) y"

// Write creates or rewrites root/sys/kernel/random/boot_id and root/1/stat
// (52 fields, starttime in field 22). The epoch they give is
// "<bootID>:<starttime>".
func Write(root, bootID string, starttime uint64) error {
	if err := os.MkdirAll(filepath.Join(root, "sys", "kernel", "random"), 0o755); err != nil {
		return fmt.Errorf("fakeproc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "sys", "kernel", "random", "boot_id"), []byte(bootID+"\n"), 0o644); err != nil {
		return fmt.Errorf("fakeproc: %w", err)
	}
	return SetStartTime(root, starttime)
}

// SetStartTime rewrites root/1/stat with a new PID 1 starttime.
func SetStartTime(root string, starttime uint64) error {
	if err := os.MkdirAll(filepath.Join(root, "1"), 0o755); err != nil {
		return fmt.Errorf("fakeproc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "1", "stat"), []byte(StatLine(Comm, starttime)), 0o644); err != nil {
		return fmt.Errorf("fakeproc: %w", err)
	}
	return nil
}

// StatLine renders a /proc/1/stat line with comm and starttime (field 22).
func StatLine(comm string, starttime uint64) string {
	fields := []string{"1", "(" + comm + ")", "S", "0", "1", "1", "0", "-1", "4194560",
		"18446", "299297", "0", "151", "19", "56", "722", "427", "20", "0", "1", "0"}
	fields = append(fields, fmt.Sprint(starttime)) // field 22
	for len(fields) < 52 {
		fields = append(fields, "0")
	}
	return strings.Join(fields, " ") + "\n"
}
