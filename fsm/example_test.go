package fsm_test

import (
	"context"
	"fmt"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
)

func ExampleMachine() {
	m := fsm.New()
	ctx := context.Background()
	fmt.Println(m.Accept()) // a turn starts while running

	changed, _ := m.Fire(ctx, fsm.Drain)
	fmt.Println(changed, m.State(), m.Accept()) // new turns refused
	changed, _ = m.Fire(ctx, fsm.Drain)
	fmt.Println(changed) // a repeat is a no-op

	_, _ = m.Fire(ctx, fsm.Shutdown)
	_, err := m.Fire(ctx, fsm.Resume)
	fmt.Println(err) // shutdown wins

	_ = m.Release()
	// Every wait is bounded: a turn that never ends must not hang shutdown.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println(m.WaitIdle(wait), m.InFlight())
	// Output:
	// true
	// true draining false
	// false
	// fsm: resume in shutting_down: fsm: shutdown wins
	// <nil> 0
}
