// Package layout has no code: its test checks the import arrows between
// quiesce's packages (cmd/quiesce → server → gateway → fsm, marker,
// notify, agent; server → server/page; cmd/quiesce → client → api; every
// package may use the leaf helpers under internal/), so no arrow points
// back up and no package takes another's job.
package layout
