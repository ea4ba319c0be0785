//go:build !quiesce_plantedbugs

package fsm

// plantedBug is always empty in a normal build: the planted-bug branches
// compare a constant and are compiled away.
const plantedBug = ""
