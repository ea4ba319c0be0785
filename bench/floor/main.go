// Command floor is the bench's exit floor: a trivial Go program that prints
// "ready" and exits 0 on SIGTERM. Built and run by the bench driver only.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Println("ready")
	<-sigs
}
