package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// newTestMain returns a Main with buffers and the given environment.
func newTestMain(env map[string]string) (*Main, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Main{Program: "quiesce", Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, &out, &errb
}

func TestParseFlagsExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		code int
	}{
		{nil, nil, exitUsage},
		{[]string{"-h"}, nil, exitOK},
		{[]string{"help"}, nil, exitOK},
		{[]string{"frobnicate"}, nil, exitUsage},
		{[]string{"run", "-h"}, nil, exitOK},
		{[]string{"drain", "--help"}, nil, exitOK},
		{[]string{"drain", "--no-such-flag"}, nil, exitUsage},
		{[]string{"status", "extra"}, nil, exitUsage},
		{[]string{"run", "--drain-timeout", "soon"}, nil, exitUsage},
		{[]string{"run"}, map[string]string{"QUIESCE_DRAIN_TIMEOUT": "soon"}, exitUsage},
		{[]string{"diagram", "--format", "dot"}, nil, exitOK},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.args), func(t *testing.T) {
			m, _, _ := newTestMain(tt.env)
			err := m.ParseFlags(context.Background(), tt.args)
			assert.Equal(t, tt.code, ExitCode(err), "err %v", err)
		})
	}
}

func TestParseFlagsEnvFallback(t *testing.T) {
	env := map[string]string{
		"QUIESCE_HOME": "/srv/q", "QUIESCE_ADDR": "127.0.0.1:9999", "QUIESCE_DRAIN_TIMEOUT": "2s",
		"QUIESCE_PROC_ROOT": "/fake/proc", "QUIESCE_LOG_FORMAT": "json",
	}
	m, _, _ := newTestMain(env)
	require.NoError(t, m.ParseFlags(context.Background(), []string{"run", "--addr", "127.0.0.1:1"}))
	c := m.cmd.(*runCmd)
	assert.Equal(t, "/srv/q", c.home)
	assert.Equal(t, "127.0.0.1:1", c.addr, "the command line wins over the environment")
	assert.Equal(t, 2*time.Second, c.drainTimeout)
	assert.Equal(t, "/fake/proc", c.procRoot)
	assert.Equal(t, "json", c.logFormat)

	m, _, _ = newTestMain(map[string]string{"QUIESCE_URL": "http://127.0.0.1:1", "QUIESCE_HOME": "/h"})
	require.NoError(t, m.ParseFlags(context.Background(), []string{"status"}))
	assert.Equal(t, "http://127.0.0.1:1", m.cmd.(*statusCmd).url)
	assert.Equal(t, "/h", m.cmd.(*statusCmd).home)
}

func TestHelpListsCommandsAndExitCodes(t *testing.T) {
	m, out, _ := newTestMain(nil)
	assert.ErrorIs(t, m.ParseFlags(context.Background(), []string{"-h"}), flag.ErrHelp)
	for name := range commands {
		assert.Contains(t, out.String(), "  "+name+" ")
	}
	assert.Contains(t, out.String(), "3  drain --wait timed out")

	m, _, errb := newTestMain(nil)
	assert.ErrorIs(t, m.ParseFlags(context.Background(), []string{"run", "-h"}), flag.ErrHelp)
	assert.Contains(t, errb.String(), "(env QUIESCE_HOME)")
	assert.Contains(t, errb.String(), "-dev")
}

func TestRunValidate(t *testing.T) {
	for _, args := range [][]string{
		{"--agent", "llm"},
		{"--agent", "exec"},
		{"--notify-webhook", "ftp://example.com/hook"},
		{"--drain-timeout", "0s"},
		{"--log-level", "loud"},
		{"--log-format", "xml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			m, _, _ := newTestMain(nil)
			require.NoError(t, m.ParseFlags(context.Background(), append([]string{"run", "--home", t.TempDir()}, args...)))
			err := m.Run(context.Background())
			assert.Equal(t, exitUsage, ExitCode(err), "err %v", err)
		})
	}
}

func TestDiagram(t *testing.T) {
	for _, f := range []fsm.Format{fsm.Mermaid, fsm.DOT} {
		m, out, _ := newTestMain(nil)
		require.NoError(t, m.ParseFlags(context.Background(), []string{"diagram", "--format", string(f)}))
		require.NoError(t, m.Run(context.Background()))
		want, err := fsm.Describe(f)
		require.NoError(t, err)
		assert.Equal(t, strings.TrimRight(want, "\n")+"\n", out.String())
	}
}

func TestGroup(t *testing.T) {
	errFirst := errors.New("first")
	var order []string
	stopB, stopC := make(chan struct{}), make(chan struct{})
	var g group
	g.add(func() error { return errFirst }, func(error) { order = append(order, "a") })
	g.add(func() error { <-stopB; return nil }, func(error) { order = append(order, "b"); close(stopB) })
	g.add(func() error { <-stopC; return errors.New("late") }, func(error) { order = append(order, "c"); close(stopC) })
	done := make(chan error, 1)
	go func() { done <- g.run() }()
	select {
	case err := <-done:
		assert.Equal(t, errFirst, err)
		assert.Equal(t, []string{"a", "b", "c"}, order, "interrupts run in the order actors were added")
	case <-time.After(5 * time.Second):
		t.Fatal("group did not return")
	}
	var empty group
	assert.NoError(t, empty.run())
}

// statusSeq returns a status func that yields states in order, then
// repeats the last.
func statusSeq(states ...gateway.Status) func(context.Context) (gateway.Status, error) {
	i := 0
	return func(context.Context) (gateway.Status, error) {
		st := states[min(i, len(states)-1)]
		i++
		return st, nil
	}
}

func TestWaitIdle(t *testing.T) {
	ctx := context.Background()
	t.Run("Idle", func(t *testing.T) {
		var out bytes.Buffer
		err := waitIdle(ctx, &out, time.Minute, statusSeq(
			gateway.Status{State: fsm.Running, ActiveAgents: 2}, // the drain not seen yet (local state file lag)
			gateway.Status{State: fsm.Draining, ActiveAgents: 2},
			gateway.Status{State: fsm.Draining, ActiveAgents: 1},
			gateway.Status{State: fsm.Draining, ActiveAgents: 0},
		))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.Len(t, lines, 5, out.String())
		assert.True(t, strings.HasPrefix(lines[1], "draining, 2 turns in flight"), lines[1])
		assert.True(t, strings.HasPrefix(lines[2], "draining, 1 turn in flight"), lines[2])
		assert.True(t, strings.HasPrefix(lines[4], "idle:"), lines[4])
	})
	t.Run("Cancelled", func(t *testing.T) {
		err := waitIdle(ctx, &bytes.Buffer{}, time.Minute, statusSeq(
			gateway.Status{State: fsm.Draining, ActiveAgents: 1},
			gateway.Status{State: fsm.Running, ActiveAgents: 1},
		))
		require.Error(t, err)
		assert.Equal(t, exitError, ExitCode(err))
	})
	t.Run("Timeout", func(t *testing.T) {
		err := waitIdle(ctx, &bytes.Buffer{}, time.Millisecond, statusSeq(gateway.Status{State: fsm.Draining, ActiveAgents: 1}))
		assert.ErrorIs(t, err, errWaitTimeout)
		assert.Equal(t, exitWaitTimeout, ExitCode(err))
	})
	t.Run("StatusError", func(t *testing.T) {
		err := waitIdle(ctx, &bytes.Buffer{}, time.Minute, func(context.Context) (gateway.Status, error) {
			return gateway.Status{}, errors.New("connection refused")
		})
		assert.ErrorContains(t, err, "connection refused")
	})
}
