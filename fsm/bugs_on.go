//go:build quiesce_plantedbugs

package fsm

import "os"

// plantedBug selects one deliberately broken behaviour, only in test
// binaries built with -tags quiesce_plantedbugs, so the property tests can
// show they catch it (see planted_test.go).
var plantedBug = os.Getenv("QUIESCE_PLANTED_BUG")
