// Package logbuf is a buffer safe for concurrent writes and reads, for
// tests that capture a process's output or a slog JSON handler's lines.
package logbuf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer guarded by a mutex. The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Records decodes every non-blank line as a JSON object (slog's
// JSONHandler output). It returns an error naming the first bad line.
func (b *Buffer) Records() ([]map[string]any, error) {
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return out, fmt.Errorf("logbuf: log line %q: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, nil
}
