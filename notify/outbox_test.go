package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

func TestOutboxAppendsJSONLines(t *testing.T) {
	o, path := mustOpenOutbox(t)
	local := time.FixedZone("UTC+2", 2*3600)
	msgs := []notify.Message{
		broadcast("sd1"),
		ping("sd1", "s1"),
		{At: time.Date(2026, 1, 2, 12, 0, 0, 5, local), Kind: notify.KindSessionInterrupted, Target: "s2", Text: "t", ShutdownID: "sd1"},
	}
	for _, m := range msgs {
		require.NoErrorf(t, o.Send(context.Background(), m), "Send(%s)", m.ID())
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Lenf(t, lines, len(msgs), "got %d lines, want %d:\n%s", len(lines), len(msgs), data)
	for i, line := range lines {
		var obj map[string]any
		require.NoErrorf(t, json.Unmarshal([]byte(line), &obj), "line %d %q", i+1, line)
		assert.Lenf(t, obj, 6, "line %d: got %d fields, want 6: %s", i+1, len(obj), line)
		assert.Equalf(t, msgs[i].ID(), obj["id"], "line %d: id %v, want %s", i+1, obj["id"], msgs[i].ID())
		at, _ := obj["at"].(string)
		if ts, err := time.Parse(time.RFC3339Nano, at); err != nil || !strings.HasSuffix(at, "Z") || !ts.Equal(msgs[i].At) {
			assert.Fail(t, fmt.Sprintf("line %d: at %q is not %v in RFC 3339 UTC", i+1, at, msgs[i].At))
		}
		for k, want := range map[string]string{"kind": string(msgs[i].Kind), "target": msgs[i].Target, "text": msgs[i].Text, "shutdown_id": msgs[i].ShutdownID} {
			got := obj[k]
			assert.Equalf(t, want, got, "line %d: %s: got %v, want %v", i+1, k, got, want)
		}
	}
	got := mustReadOutbox(t, path)
	assert.Truef(t, slices.Equal(ids(got), ids(msgs)), "ReadOutbox: got %v, want %v", ids(got), ids(msgs))
}

func TestOutboxFileMode(t *testing.T) {
	o, path := mustOpenOutbox(t)
	assert.Equalf(t, path, o.Path(), "Path: got %q, want %q", o.Path(), path)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	got, want := fi.Mode().Perm(), os.FileMode(0o600)
	assert.Equalf(t, want, got, "got permissions %04o, want %04o", got, want)
}

func TestOutboxConcurrentSends(t *testing.T) {
	const goroutines, each = 20, 10
	o, path := mustOpenOutbox(t)
	// A long text makes a torn or interleaved write visible.
	long := strings.Repeat("x", 8<<10)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m := ping("sd1", fmt.Sprintf("s-%d-%d", g, i))
				m.Text = long
				errs <- o.Send(context.Background(), m)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoErrorf(t, err, "Send")
	}
	got := mustReadOutbox(t, path)
	require.Lenf(t, got, goroutines*each, "got %d messages, want %d", len(got), goroutines*each)
	seen := make(map[string]bool)
	for _, m := range got {
		require.Falsef(t, seen[m.ID()] || m.Text != long, "message %s duplicated or mangled", m.ID())
		seen[m.ID()] = true
	}
}

func TestReadOutbox(t *testing.T) {
	line := func(m notify.Message) string {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return string(b) + "\n"
	}
	a, b := line(ping("sd1", "a")), line(ping("sd1", "b"))
	tests := []struct {
		name    string
		content string
		want    []string // targets
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"two lines", a + b, []string{"a", "b"}, false},
		{"torn last line", a + b + b[:20], []string{"a", "b"}, false},
		{"torn last line, one byte", a + "{", []string{"a"}, false},
		{"last line without newline", a + strings.TrimSuffix(b, "\n"), []string{"a", "b"}, false},
		{"blank lines", "\n" + a + "\n\n" + b, []string{"a", "b"}, false},
		{"corrupt middle line", a + "garbage\n" + b, []string{"a"}, true},
		{"not an object", a + "null\n", []string{"a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.jsonl")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			msgs, err := notify.ReadOutbox(path)
			require.Equalf(t, tt.wantErr, (err != nil), "got error %v, want error %v", err, tt.wantErr)
			var targets []string
			for _, m := range msgs {
				targets = append(targets, m.Target)
			}
			assert.Truef(t, slices.Equal(targets, tt.want), "got targets %v, want %v", targets, tt.want)
		})
	}
}

func TestReadOutboxMissing(t *testing.T) {
	_, err := notify.ReadOutbox(filepath.Join(t.TempDir(), "nope.jsonl"))
	assert.ErrorIsf(t, err, fs.ErrNotExist, "got %v, want fs.ErrNotExist", err)
}

func TestOpenOutboxRepairsTornTail(t *testing.T) {
	whole, err := json.Marshal(ping("sd1", "a"))
	require.NoError(t, err)
	tail, err := json.Marshal(ping("sd1", "b"))
	require.NoError(t, err)
	tests := []struct {
		name string
		tail []byte
		want []string
	}{
		{"torn line dropped", tail[:len(tail)/2], []string{"a", "c"}},
		{"whole object without newline kept", tail, []string{"a", "b", "c"}},
		{"long torn line dropped", bytes.Repeat([]byte("y"), 10000), []string{"a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.jsonl")
			content := append(append(append([]byte(nil), whole...), '\n'), tt.tail...)
			require.NoError(t, os.WriteFile(path, content, 0o600))
			o, err := notify.OpenOutbox(path)
			require.NoErrorf(t, err, "OpenOutbox")
			defer o.Close()
			require.NoErrorf(t, o.Send(context.Background(), ping("sd1", "c")), "Send")
			var targets []string
			for _, m := range mustReadOutbox(t, path) {
				targets = append(targets, m.Target)
			}
			assert.Truef(t, slices.Equal(targets, tt.want), "got targets %v, want %v", targets, tt.want)
		})
	}
}

func TestOpenOutboxErrors(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{dir, filepath.Join(dir, "missing", "outbox.jsonl")} {
		o, err := notify.OpenOutbox(path)
		if !assert.Errorf(t, err, "OpenOutbox(%s)", path) {
			o.Close()
			continue
		}
		assert.Truef(t, strings.HasPrefix(err.Error(), "notify: "), "OpenOutbox(%s): error %q lacks the package prefix", path, err)
	}
}

func TestOutboxSendAfterClose(t *testing.T) {
	o, path := mustOpenOutbox(t)
	require.NoErrorf(t, o.Close(), "Close")
	assert.NoErrorf(t, o.Close(), "second Close")
	err := o.Send(context.Background(), ping("sd1", "s1"))
	assert.ErrorIsf(t, err, os.ErrClosed, "Send after Close: got %v, want os.ErrClosed", err)
	got := mustReadOutbox(t, path)
	assert.Lenf(t, got, 0, "got %d messages, want 0", len(got))
}

func TestOutboxSendCancelled(t *testing.T) {
	o, path := mustOpenOutbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := o.Send(ctx, ping("sd1", "s1"))
	assert.ErrorIsf(t, err, context.Canceled, "got %v, want context.Canceled", err)
	got := mustReadOutbox(t, path)
	assert.Lenf(t, got, 0, "got %d messages, want 0", len(got))
}

// hostilePaths lays out, in a fresh directory, a FIFO, a directory and a
// symlink to a regular file, each where a home file would be, and returns
// their paths by kind. A cleanup opens the FIFO for reading and then for
// writing without blocking, so that a writer or reader stuck opening it (a
// regression) is released.
func hostilePaths(t *testing.T, name string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{
		"fifo":      filepath.Join(dir, "fifo", name),
		"directory": filepath.Join(dir, "dir", name),
		"symlink":   filepath.Join(dir, "link", name),
	}
	for _, p := range paths {
		require.NoError(t, os.Mkdir(filepath.Dir(p), 0o700))
	}
	require.NoError(t, syscall.Mkfifo(paths["fifo"], 0o600))
	t.Cleanup(func() {
		for _, flag := range []int{os.O_RDONLY, os.O_WRONLY} {
			if f, err := os.OpenFile(paths["fifo"], flag|syscall.O_NONBLOCK, 0); err == nil {
				_ = f.Close()
			}
		}
	})
	require.NoError(t, os.Mkdir(paths["directory"], 0o700))
	real := filepath.Join(dir, "real.jsonl")
	require.NoError(t, os.WriteFile(real, nil, 0o600))
	require.NoError(t, os.Symlink(real, paths["symlink"]))
	return paths
}

// checkRefused runs op on each hostile path and fails unless it returns,
// within a bounded wait, an error that names the path and wraps
// homefile.ErrNotRegular.
func checkRefused(t *testing.T, paths map[string]string, ops map[string]func(path string) error) {
	t.Helper()
	for kind, p := range paths {
		for opName, op := range ops {
			t.Run(kind+"/"+opName, func(t *testing.T) {
				done := make(chan struct{})
				var err error
				go func() {
					defer close(done)
					err = op(p)
				}()
				within(t, 5*time.Second, done, opName+" on a "+kind)
				require.Errorf(t, err, "%s(%s)", opName, p)
				assert.ErrorIsf(t, err, homefile.ErrNotRegular, "%s", opName)
				assert.Containsf(t, err.Error(), p, "%s: the error names the file", opName)
				assert.Truef(t, strings.HasPrefix(err.Error(), "notify: "), "%s: error %q lacks the package prefix", opName, err)
			})
		}
	}
}

// TestOutboxFIFORefusedWithoutBlocking: a FIFO (or directory, or symlink) at
// outbox.jsonl makes OpenOutbox and ReadOutbox fail at once with an error
// naming it, instead of hanging start-up until a reader appears.
func TestOutboxFIFORefusedWithoutBlocking(t *testing.T) {
	checkRefused(t, hostilePaths(t, "outbox.jsonl"), map[string]func(string) error{
		"OpenOutbox": func(p string) error {
			o, err := notify.OpenOutbox(p)
			if err == nil {
				_ = o.Close()
			}
			return err
		},
		"ReadOutbox": func(p string) error {
			_, err := notify.ReadOutbox(p)
			return err
		},
	})
}

// TestOutboxFsyncsEachAppend: every append is fsynced (seen through
// homefile.SetSyncHook) before Send returns, and through a Notifier before any
// other sink sees the message.
func TestOutboxFsyncsEachAppend(t *testing.T) {
	var mu sync.Mutex
	synced := make(map[string]int)
	homefile.SetSyncHook(func(p string) {
		mu.Lock()
		synced[p]++
		mu.Unlock()
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	syncs := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return synced[p]
	}

	o, path := mustOpenOutbox(t)
	assert.GreaterOrEqualf(t, syncs(filepath.Dir(path)), 1, "OpenOutbox did not fsync the directory of a new outbox")
	base := syncs(path)
	for i := range 3 {
		require.NoErrorf(t, o.Send(context.Background(), ping("sd1", fmt.Sprint("s", i))), "Send")
		got := syncs(path) - base
		require.Equalf(t, i+1, got, "after %d appends: %d fsyncs of %s, want %d", i+1, got, path, i+1)
	}

	o2, path2 := mustOpenOutbox(t)
	base2 := syncs(path2)
	var seen []int // fsyncs of the outbox when the sink saw each message
	rec := &notify.Recorder{Hook: func(context.Context, notify.Message) error {
		seen = append(seen, syncs(path2)-base2)
		return nil
	}}
	n := notify.NewNotifier(o2, slog.New(slog.DiscardHandler), rec)
	for i := range 3 {
		require.NoErrorf(t, n.Send(context.Background(), ping("sd1", fmt.Sprint("s", i))), "Send")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.Flush(ctx)
		cancel()
		require.NoErrorf(t, err, "Flush")
	}
	require.NoErrorf(t, n.Close(context.Background()), "Close")
	want := []int{1, 2, 3}
	assert.Truef(t, slices.Equal(seen, want), "outbox fsyncs when the sink saw messages 1..3: got %v, want %v", seen, want)
}
