package main

// group runs actors, each an (execute, interrupt) pair, in the manner of
// github.com/oklog/run: when the first execute returns, every interrupt is
// called in the order the actors were added, and run waits for every other
// execute to return. The zero value is ready to use.
type group struct {
	actors []actor
}

type actor struct {
	execute   func() error
	interrupt func(error)
}

// add adds an actor. interrupt must make execute return.
func (g *group) add(execute func() error, interrupt func(error)) {
	g.actors = append(g.actors, actor{execute, interrupt})
}

// run runs every actor and returns the error of the first to return.
func (g *group) run() error {
	if len(g.actors) == 0 {
		return nil
	}
	// Start every actor.
	errs := make(chan error, len(g.actors))
	for _, a := range g.actors {
		go func() { errs <- a.execute() }()
	}
	// Wait for the first one to return.
	err := <-errs
	// Signal all actors to stop, in order.
	for _, a := range g.actors {
		a.interrupt(err)
	}
	// Wait for the rest.
	for range len(g.actors) - 1 {
		<-errs
	}
	return err
}
