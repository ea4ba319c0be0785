package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrInvalid is wrapped by a constructor given an unusable configuration
// (NewHTTP: a URL that is not http:// or https://).
var ErrInvalid = errors.New("agent: invalid configuration")

// Turn is one turn as an Agent sees it.
type Turn struct {
	Session string // the session the turn belongs to
	Text    string // the user's message, or the internal event's text
	TurnID  string // unique per turn (also per retry of an event)
	// EventID is set for a system turn started by an internal event: the
	// same on every run of that event (delivery is at-least-once), so an
	// agent can deduplicate. Empty for user turns.
	EventID string
	// OnDelta, when set, receives partial output as the agent produces
	// it (a streaming client sees each as a server-sent event). Agents
	// call Delta rather than this field. Calls come from one goroutine at
	// a time and all happen before Run returns.
	OnDelta func(text string)
}

// Delta reports partial output text (see OnDelta); without a listener it
// does nothing.
func (t Turn) Delta(text string) {
	if t.OnDelta != nil && text != "" {
		t.OnDelta(text)
	}
}

// Agent runs one turn and returns the reply. It must return soon after
// ctx is cancelled (a forced shutdown cancels it).
type Agent interface {
	Run(ctx context.Context, t Turn) (string, error)
}

// Func adapts a function to Agent.
type Func func(ctx context.Context, t Turn) (string, error)

// Run calls f.
func (f Func) Run(ctx context.Context, t Turn) (string, error) {
	return f(ctx, t)
}

// NewEcho returns the built-in agent that replies with the text after
// work, or returns ctx's error (its cause) if cancelled first. With a
// delta listener it emits the reply word by word, spread over work;
// without one it just waits. With work <= 0 it waits for nothing: it
// checks ctx, without a timer or ctx's Done channel, so a zero-work turn
// costs neither their allocations nor a park of its goroutine.
func NewEcho(work time.Duration) Agent {
	if work <= 0 {
		return Func(echoNow)
	}
	return Func(func(ctx context.Context, turn Turn) (string, error) {
		words := []string{turn.Text}
		if turn.OnDelta != nil {
			words = splitWords(turn.Text)
		}
		t := time.NewTimer(work / time.Duration(len(words)))
		defer t.Stop()
		for i, w := range words {
			if i > 0 {
				t.Reset(work / time.Duration(len(words)))
			}
			select {
			case <-t.C:
				turn.Delta(w)
			case <-ctx.Done():
				return "", context.Cause(ctx)
			}
		}
		return turn.Text, nil
	})
}

// echoNow is the zero-work echo agent: each word's delta at once, unless
// ctx is done.
func echoNow(ctx context.Context, turn Turn) (string, error) {
	if turn.OnDelta != nil {
		for _, w := range splitWords(turn.Text) {
			if ctx.Err() != nil {
				return "", context.Cause(ctx)
			}
			turn.Delta(w)
		}
	}
	if ctx.Err() != nil {
		return "", context.Cause(ctx)
	}
	return turn.Text, nil
}

// splitWords splits s after each run of spaces, so the parts join back to s.
func splitWords(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		j := i
		for j < len(s) && s[j] == ' ' {
			j++
		}
		out = append(out, s[:j])
		s = s[j:]
	}
	if len(out) == 0 {
		out = []string{s}
	}
	return out
}

// maxReply bounds what an exec agent may print as its reply.
const maxReply = 1 << 20

// execWaitDelay bounds how long Run waits for output pipes after the
// process group was killed.
const execWaitDelay = 2 * time.Second

// NewExec returns an agent that runs command with /bin/sh -c once per
// turn: the message on stdin, the reply from stdout (trailing newline
// trimmed), stderr logged line by line, a non-zero exit a turn error. On
// cancellation the whole process group is killed, so children the command
// started die with it; on Linux the command also gets SIGKILL when the
// gateway dies (even by kill -9). The environment gets QUIESCE_SESSION,
// QUIESCE_TURN_ID and, for internal events, QUIESCE_EVENT_ID; the message
// is only ever on stdin, never in argv or the shell string.
func NewExec(command string, logger *slog.Logger) Agent {
	if logger == nil {
		logger = slog.Default()
	}
	return Func(func(ctx context.Context, t Turn) (string, error) {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", execScript(command))
		cmd.Env = append(agentEnviron(cmd.Environ()), "QUIESCE_SESSION="+t.Session, "QUIESCE_TURN_ID="+t.TurnID)
		if t.EventID != "" {
			cmd.Env = append(cmd.Env, "QUIESCE_EVENT_ID="+t.EventID)
		}
		cmd.Stdin = strings.NewReader(t.Text)
		out := limitedBuffer{turn: t}
		cmd.Stdout = &out // copied by exec from one goroutine; Wait waits for it
		stderr := &lineLogger{logger: logger, session: t.Session}
		cmd.Stderr = stderr // copied by exec; Wait waits for it (bounded by WaitDelay)
		cmd.SysProcAttr = processGroup()
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = execWaitDelay
		if err := cmd.Start(); err != nil {
			return "", fmt.Errorf("exec agent: start: %w", err)
		}
		err := cmd.Wait()
		lastErr := stderr.flush()
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && lastErr != "" {
				return "", fmt.Errorf("exec agent: %w: %s", err, lastErr)
			}
			return "", fmt.Errorf("exec agent: %w", err)
		}
		out.flushLine()
		return strings.TrimRight(out.String(), "\n"), nil
	})
}

// agentEnviron is env without what belongs to the gateway's supervisor
// (systemd's notify socket and watchdog), so an agent cannot speak for
// the gateway.
func agentEnviron(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// execScript wraps an exec agent's command so that its whole process
// group dies when the shell gets SIGTERM (the parent-death signal): the
// command runs as a child of the shell, with the shell's stdin (fd 3
// carries it past the /dev/null an asynchronous list would get), while
// the shell waits and keeps a trap that kills the group. The exit status
// is the command's.
func execScript(command string) string {
	return "exec 3<&0\ntrap 'kill -KILL 0' TERM\n{\n" + command + "\n} <&3 3<&- &\nwait $!\n"
}

// lineLogger logs each line written to it at WARN and remembers the
// last one. exec.Cmd writes to it from one goroutine.
type lineLogger struct {
	logger  *slog.Logger
	session string
	partial []byte
	last    string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > maxReply { // a runaway line: log what we have
		l.line(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

func (l *lineLogger) line(s string) {
	l.last = s
	l.logger.Warn("agent stderr", "session", l.session, "line", s)
}

// flush logs an unterminated last line and returns the last line.
func (l *lineLogger) flush() string {
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
	return l.last
}

// limitedBuffer keeps the first maxReply bytes written to it and reports
// each complete line as a delta of turn. It has no ReadFrom on purpose:
// io.Copy must go through Write, which enforces the limit.
type limitedBuffer struct {
	buf  bytes.Buffer
	turn Turn
	sent int // bytes already reported as deltas
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxReply - b.buf.Len(); room < len(p) {
		if room > 0 {
			b.buf.Write(p[:room])
		}
	} else {
		b.buf.Write(p)
	}
	if b.turn.OnDelta != nil {
		if i := bytes.LastIndexByte(b.buf.Bytes()[b.sent:], '\n'); i >= 0 {
			for _, line := range strings.SplitAfter(string(b.buf.Bytes()[b.sent:b.sent+i+1]), "\n") {
				b.turn.Delta(line)
			}
			b.sent += i + 1
		}
	}
	return len(p), nil
}

// String returns what was kept.
func (b *limitedBuffer) String() string { return b.buf.String() }

// flushLine reports an unterminated last line as a delta.
func (b *limitedBuffer) flushLine() {
	if b.turn.OnDelta != nil && b.sent < b.buf.Len() {
		b.turn.Delta(string(b.buf.Bytes()[b.sent:]))
		b.sent = b.buf.Len()
	}
}
