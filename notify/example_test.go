package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/quiesce-dev/quiesce/notify"
)

func ExampleNotifier() {
	home, err := os.MkdirTemp("", "quiesce-home")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(home)
	path := filepath.Join(home, "outbox.jsonl")

	outbox, err := notify.OpenOutbox(path)
	if err != nil {
		panic(err)
	}
	chat := &notify.Recorder{} // in production: notify.NewWebhook(url, notify.WebhookOptions{})
	n := notify.NewNotifier(outbox, slog.New(slog.DiscardHandler), chat)

	ctx := context.Background()
	const shutdownID = "sd-1"
	_ = n.Send(ctx, notify.Message{Kind: notify.KindShutdownBroadcast, Target: notify.HomeTarget, ShutdownID: shutdownID})
	_ = n.Send(ctx, notify.Message{Kind: notify.KindSessionInterrupted, Target: "alice", ShutdownID: shutdownID})
	_ = n.Send(ctx, notify.Message{Kind: notify.KindSessionInterrupted, Target: "alice", ShutdownID: shutdownID}) // ignored

	// Close flushes the sinks first, within the notify timeout.
	closeCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := n.Close(closeCtx); err != nil {
		fmt.Println("close:", err)
	}

	fmt.Println("home broadcasts:", chat.Count(notify.KindShutdownBroadcast, notify.HomeTarget))
	fmt.Println("pings to alice:", chat.Count(notify.KindSessionInterrupted, "alice"))
	msgs, _ := notify.ReadOutbox(path)
	for _, m := range msgs {
		fmt.Println("outbox:", m.ID())
	}
	// Output:
	// home broadcasts: 1
	// pings to alice: 1
	// outbox: sd-1/shutdown_broadcast/home
	// outbox: sd-1/session_interrupted/alice
}

func ExampleMessage_ID() {
	m := notify.Message{Kind: notify.KindSessionInterrupted, Target: "team/alice", ShutdownID: "sd-1"}
	fmt.Println(m.ID())
	// Output: sd-1/session_interrupted/team%2Falice
}
