package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// Example embeds the runtime in a Go program with its own agent, serves it
// with the HTTP API on a loopback port, and drains and shuts it down.
func Example() {
	home, _ := os.MkdirTemp("", "quiesce-example-")
	defer os.RemoveAll(home)

	shout := agent.Func(func(ctx context.Context, t agent.Turn) (string, error) {
		t.Delta(strings.ToUpper(t.Text)) // partial output, for streaming clients
		return strings.ToUpper(t.Text) + "!", nil
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(gateway.Config{Home: home, Agent: shout, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Close()
	srv, _ := server.New(server.Config{
		Addr:    "127.0.0.1:0",
		Gateway: gw,
		Tokens:  server.NewTokens(map[string]string{"ops": "example-token"}),
		Logger:  quiet,
	})
	_ = srv.Listen()                   // claim the port
	_ = gw.Start(context.Background()) // reconcile with a surviving marker
	srv.Serve()                        // then serve

	ctx := context.Background()
	c, _ := client.New(srv.URL(), "example-token", nil)
	reply, _ := c.Send(ctx, "alice", "hello")
	fmt.Println("reply:", reply)

	d, _ := c.Drain(ctx, false, "")
	fmt.Println("drain:", d.State)
	_, err = c.Send(ctx, "alice", "again")
	fmt.Println("refused while draining:", client.IsAPIError(err, 503))

	shut, _ := c.Shutdown(ctx, false)
	fmt.Println("shutdown started:", shut.OK)
	<-gw.Done()
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = srv.Close(closeCtx)
	fmt.Println("state:", gw.State())
	// Output:
	// reply: HELLO!
	// drain: draining
	// refused while draining: true
	// shutdown started: true
	// state: stopped
}
