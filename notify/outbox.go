package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// Outbox is the durable record of every notification: a JSON-lines file with
// one Message object per line (conventionally $QUIESCE_HOME/outbox.jsonl).
//
// Each Send is one write(2) of one complete line on a file opened with
// O_APPEND, followed by fsync, so lines never interleave and a message Send
// reported is on disk. Outbox is a Sink and is safe for concurrent use; it
// assumes it is the only writer of its file.
type Outbox struct {
	path string
	// mu is a one-slot semaphore rather than a sync.Mutex so that a Send
	// waiting behind a slow fsync can give up when its ctx is done.
	mu chan struct{}
	f  *os.File // nil once closed; guarded by mu
}

// OpenOutbox opens the outbox file at path for appending, creating it with
// mode 0600 if needed (an existing file keeps its mode) and syncing its
// directory so the new entry survives a crash.
//
// The file is opened through homefile.Open: without blocking and without
// following a final symlink, so a FIFO, directory, device, socket or symlink
// at path is refused at once with an error that names path and wraps
// homefile.ErrNotRegular.
//
// A torn last line left by a crash during a write (bytes after the last
// newline) was never reported as sent: OpenOutbox truncates it so the next
// message starts on a line of its own. If that tail is a complete JSON object
// missing only its newline, the newline is added instead.
func OpenOutbox(path string) (*Outbox, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, fmt.Errorf("notify: open outbox: %w", err)
	}
	return &Outbox{path: path, mu: make(chan struct{}, 1), f: f}, nil
}

// openAppend opens the JSON-lines file at path for appending through
// homefile.Open (creating it 0600), repairs a torn tail (see OpenOutbox)
// and fsyncs the file and its directory. Errors name path.
func openAppend(path string) (*os.File, error) {
	f, err := homefile.Open(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := prepareAppend(f, path); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// prepareAppend repairs a torn tail of f and syncs f and its directory.
func prepareAppend(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := repairTail(f, fi.Size()); err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	if err := homefile.Sync(f); err != nil {
		return err
	}
	return homefile.SyncDir(filepath.Dir(path))
}

// repairTail makes f, of the given size and opened for reading and
// appending, end with a newline (or be empty): see OpenOutbox.
func repairTail(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	// Scan backwards in chunks for the last newline.
	const chunk = 4096
	var tail []byte
	end := size
	lastNL := int64(-1)
	for end > 0 && lastNL < 0 {
		start := max(end-chunk, 0)
		buf := make([]byte, end-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			lastNL = start + int64(i)
			buf = buf[i+1:]
		}
		tail = append(buf, tail...)
		end = start
	}
	if lastNL == size-1 {
		return nil // ends with a newline: nothing torn
	}
	if isObject(tail) {
		_, err := f.Write([]byte{'\n'})
		return err
	}
	return f.Truncate(lastNL + 1)
}

// Path returns the file the outbox appends to.
func (o *Outbox) Path() string { return o.path }

// Send appends m as one JSON line (At in UTC) and fsyncs the file (through
// homefile.Sync, so a homefile.SetSyncHook hook sees it). It returns
// ctx.Err() if ctx is done before the write starts; the write and fsync
// themselves are not interruptible. If the write fails part-way the partial
// line is truncated away. Send on a closed Outbox returns an error wrapping
// os.ErrClosed.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	return o.SendAll(ctx, []Message{m})
}

// SendAll appends msgs as one write and one fsync, so recording many
// messages costs one disk round trip; on failure none of them is recorded
// (a partial write is cut off). It honours ctx like Send.
func (o *Outbox) SendAll(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	lines, err := encodeLines(msgs)
	if err != nil {
		return err
	}
	what := msgs[0].ID()
	if len(msgs) > 1 {
		what = fmt.Sprintf("%s and %d more", what, len(msgs)-1)
	}
	select {
	case o.mu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("notify: outbox append %s: %w", what, ctx.Err())
	}
	defer func() { <-o.mu }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify: outbox append %s: %w", what, err)
	}
	if o.f == nil {
		return fmt.Errorf("notify: outbox %s: %w", o.path, os.ErrClosed)
	}
	fi, err := o.f.Stat()
	if err != nil {
		return fmt.Errorf("notify: outbox append %s: %w", what, err)
	}
	if n, err := o.f.Write(lines); err != nil {
		if n > 0 {
			// Leave no torn line behind for the next append to glue onto.
			_ = o.f.Truncate(fi.Size())
		}
		return fmt.Errorf("notify: outbox append %s: %w", what, err)
	}
	if err := homefile.Sync(o.f); err != nil {
		return fmt.Errorf("notify: outbox sync %s: %w", what, err)
	}
	return nil
}

// Close closes the file. Calling Close again returns nil. Close waits for a
// Send in progress to finish.
func (o *Outbox) Close() error {
	o.mu <- struct{}{}
	defer func() { <-o.mu }()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	if err != nil {
		return fmt.Errorf("notify: close outbox: %w", err)
	}
	return nil
}

// String returns "outbox", the sink's name in log lines.
func (o *Outbox) String() string { return "outbox" }

// maxReadBytes bounds how much of an outbox or pending file is read.
const maxReadBytes = 256 << 20

// ReadOutbox reads every message in the outbox file at path, in the order
// they were appended. Blank lines are skipped, and so is a torn last line (one
// that does not end in a newline and does not parse), which a crash during a
// write can leave. Any other line that is not a JSON message is an error
// naming its line number; the messages before it are returned with the error.
// The file is opened through homefile.ReadFile, so a FIFO there is an error
// (wrapping homefile.ErrNotRegular), never a hang. A missing file is an error
// wrapping fs.ErrNotExist.
func ReadOutbox(path string) ([]Message, error) {
	msgs, err := readLines(path)
	if err != nil {
		return msgs, fmt.Errorf("notify: read outbox: %w", err)
	}
	return msgs, nil
}

// readLines reads the JSON-lines file at path: see ReadOutbox. Errors name
// path.
func readLines(path string) ([]Message, error) {
	data, _, truncated, err := homefile.ReadFile(path, maxReadBytes)
	if err != nil {
		return nil, err
	}
	if truncated {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxReadBytes)
	}
	var msgs []Message
	for lineNo := 1; len(data) > 0; lineNo++ {
		line, rest, terminated := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m Message
		err := json.Unmarshal(line, &m)
		if err == nil && !isObject(line) {
			err = errors.New("not a JSON object")
		}
		if err != nil {
			if !terminated {
				break // torn last line
			}
			return msgs, fmt.Errorf("%s: line %d: %w", path, lineNo, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// encodeLines returns msgs as JSON lines.
func encodeLines(msgs []Message) ([]byte, error) {
	var buf []byte
	for _, m := range msgs {
		line, err := encode(m)
		if err != nil {
			return nil, err
		}
		buf = append(append(buf, line...), '\n')
	}
	return buf, nil
}

// encode returns m as a JSON object with At in UTC.
func encode(m Message) ([]byte, error) {
	m.At = m.At.UTC()
	b, err := json.Marshal(struct {
		ID string `json:"id"`
		Message
	}{m.ID(), m})
	if err != nil {
		return nil, fmt.Errorf("notify: encode %s: %w", m.ID(), err)
	}
	return b, nil
}

// isObject reports whether b is one JSON object.
func isObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}
