package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrNoHAProxy is returned when no haproxy binary can be found.
var ErrNoHAProxy = errors.New("haproxy is not installed (Debian, Ubuntu: sudo apt-get install -y --no-install-recommends haproxy; .ci/run does this)")

// The lines of deploy/haproxy/haproxy.cfg the drill rewrites; the rest of
// the file runs as checked in.
var (
	turnsBindRe  = regexp.MustCompile(`(?m)^(\s*)bind 127\.0\.0\.1:8480\s*$`)
	eventsBindRe = regexp.MustCompile(`(?m)^(\s*)bind 127\.0\.0\.1:8481\s*$`)
	statsRe      = regexp.MustCompile(`(?m)^(\s*)stats socket /run/haproxy/admin\.sock( .*)$`)
	serverRe     = regexp.MustCompile(`(?m)^(\s*)server gw\d+ 127\.0\.0\.1:\d+\s*\n`)
)

// fleetConfig is the checked-in configuration with the frontends bound to
// turnsAddr and eventsAddr, the runtime API on socket, and one server line
// per gateway address (named gw1, gw2, ...).
func fleetConfig(checkedIn, turnsAddr, eventsAddr, socket string, gateways []string) (string, error) {
	for _, want := range []struct {
		re   *regexp.Regexp
		what string
	}{
		{turnsBindRe, "bind 127.0.0.1:8480 (the turns frontend)"},
		{eventsBindRe, "bind 127.0.0.1:8481 (the internal events frontend)"},
		{statsRe, "stats socket /run/haproxy/admin.sock"},
	} {
		if n := len(want.re.FindAllStringIndex(checkedIn, -1)); n != 1 {
			return "", fmt.Errorf("haproxy.cfg: want exactly one line %q, found %d", want.what, n)
		}
	}
	locs := serverRe.FindAllStringSubmatchIndex(checkedIn, -1)
	if len(locs) == 0 {
		return "", errors.New(`haproxy.cfg: no "server gwN 127.0.0.1:PORT" line to replace`)
	}
	for i := 1; i < len(locs); i++ {
		if locs[i][0] != locs[i-1][1] {
			return "", errors.New("haproxy.cfg: the server gwN lines must be consecutive")
		}
	}
	cfg := turnsBindRe.ReplaceAllString(checkedIn, "${1}bind "+turnsAddr)
	cfg = eventsBindRe.ReplaceAllString(cfg, "${1}bind "+eventsAddr)
	cfg = statsRe.ReplaceAllString(cfg, "${1}stats socket "+socket+"${2}")
	locs = serverRe.FindAllStringSubmatchIndex(cfg, -1)
	indent := cfg[locs[0][2]:locs[0][3]]
	var servers strings.Builder
	for i, addr := range gateways {
		fmt.Fprintf(&servers, "%sserver %s %s\n", indent, serverName(i), addr)
	}
	return cfg[:locs[0][0]] + servers.String() + cfg[locs[len(locs)-1][1]:], nil
}

// serverName is the HAProxy server name of gateway i (0-based).
func serverName(i int) string { return fmt.Sprintf("gw%d", i+1) }

// lookHAProxy finds the haproxy binary: path if set, else on PATH, else
// Debian's /usr/sbin (not on a normal user's PATH).
func lookHAProxy(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", ErrNoHAProxy
}

// haproxy is the balancer the drill runs.
type haproxy struct {
	proc   *child
	socket string // the runtime API's Unix socket
}

// startHAProxy checks cfg with haproxy -c, then runs it in the foreground
// (-db) and waits until its runtime API answers on socket.
func startHAProxy(ctx context.Context, kids *children, dir, bin, cfg, socket string) (*haproxy, string, error) {
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, "", err
	}
	out, err := exec.CommandContext(ctx, bin, "-c", "-f", path).CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("haproxy -c -f %s: %w: %s", path, err, out)
	}
	version := "?"
	if v, err := exec.CommandContext(ctx, bin, "-v").Output(); err == nil {
		version, _, _ = strings.Cut(strings.TrimSpace(string(v)), " - ")
	}
	p, err := kids.start(dir, "haproxy", nil, bin, "-db", "-f", path)
	if err != nil {
		return nil, "", err
	}
	h := &haproxy{proc: p, socket: socket}
	err = poll(ctx, 10*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("haproxy exited: %v: %s", p.err, p.tail(2000))
		}
		_, err := h.states()
		return err == nil, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("haproxy's runtime API on %s: %w", socket, err)
	}
	return h, version, nil
}

// states returns the status HAProxy gives each server of backend
// "gateways" ("UP", "DOWN", "UP 1/2", "DOWN 1/2", "MAINT"), from
// "show stat" on the runtime API.
func (h *haproxy) states() (map[string]string, error) {
	conn, err := net.DialTimeout("unix", h.socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	header, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	cols := strings.Split(strings.TrimPrefix(strings.TrimSpace(header), "# "), ",")
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	px, sv, st := idx["pxname"], idx["svname"], idx["status"]
	if st == 0 {
		return nil, fmt.Errorf("show stat: no status column in %q", header)
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	out := map[string]string{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("show stat: %w", err)
		}
		if len(rec) > st && rec[px] == "gateways" && rec[sv] != "BACKEND" {
			out[rec[sv]] = rec[st]
		}
	}
	return out, nil
}

// poll calls cond every 20 ms until it returns true or an error, for at
// most d (and never past ctx).
func poll(ctx context.Context, d time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %v: %w", d, ctx.Err())
		case <-tick.C:
		}
	}
}
