package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const benchToken = "bench"

// proc is one program the driver started.
type proc struct {
	name  string
	cmd   *exec.Cmd
	url   string
	home  string
	token string
	done  chan struct{}
	err   error
	// exitAt is when cmd.Wait returned.
	exitAt time.Time
	log    string
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newHome makes a home with a tokens file for principal bench.
func (e *benchEnv) newHome() (string, string, error) {
	e.n++
	home := filepath.Join(e.dir, fmt.Sprintf("home%d", e.n))
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", "", err
	}
	tok := randHex(24)
	err := os.WriteFile(filepath.Join(home, "tokens"), []byte(benchToken+" "+tok+"\n"), 0o600)
	return home, tok, err
}

func (e *benchEnv) start(name string, args []string, url, home, token string) (*proc, error) {
	logf, err := os.Create(filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", name, len(e.procs))))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.bins[name], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, url: url, home: home, token: token, done: make(chan struct{}), log: logf.Name()}
	go func() { p.err = cmd.Wait(); p.exitAt = time.Now(); logf.Close(); close(p.done) }()
	e.procs = append(e.procs, p)
	if url != "" {
		if err := waitReady(p, 10*time.Second); err != nil {
			p.kill()
			return nil, fmt.Errorf("%s: %w (log %s)", name, err, logf.Name())
		}
	}
	return p, nil
}

// server starts program name on a fresh home and port; args builds its
// arguments from the two.
func (e *benchEnv) server(name string, args func(home, addr string) []string) (*proc, error) {
	home, tok, err := e.newHome()
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	return e.start(name, args(home, addr), "http://"+addr, home, tok)
}

// gateway starts quiesce run on a fresh home and port.
func (e *benchEnv) gateway(extra ...string) (*proc, error) {
	return e.server("quiesce", func(home, addr string) []string {
		return append([]string{"run", "--home", home, "--addr", addr}, extra...)
	})
}

// bare starts the bare net/http baseline.
func (e *benchEnv) bare(work time.Duration) (*proc, error) {
	return e.server("bare", func(home, addr string) []string {
		return []string{"--addr", addr, "--tokens-file", filepath.Join(home, "tokens"), "--work", work.String()}
	})
}

// pollLoop starts the 1 s poll loop baseline; addr "" serves no HTTP.
func (e *benchEnv) pollLoop(withHTTP bool) (*proc, error) {
	home, _, err := e.newHome()
	if err != nil {
		return nil, err
	}
	addr, url := "", ""
	if withHTTP {
		if addr, err = freePort(); err != nil {
			return nil, err
		}
		url = "http://" + addr
	}
	p, err := e.start("pollloop", []string{"--home", home, "--addr", addr, "--interval", "1s"}, url, home, "")
	if err == nil && !withHTTP {
		time.Sleep(100 * time.Millisecond)
	}
	return p, err
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (e *benchEnv) killAll() {
	for _, p := range e.procs {
		p.kill()
	}
	e.procs = nil
}

var quickClient = &http.Client{Timeout: 5 * time.Second}

func waitReady(p *proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		resp, err := quickClient.Get(p.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", d)
}

// newClient is a keep-alive client for conns connections.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		MaxIdleConns: conns + 16, MaxIdleConnsPerHost: conns + 16, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// turn sends one turn and returns the status code.
func turn(c *http.Client, p *proc, session, text string) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/sessions/"+session+"/messages",
		strings.NewReader(`{"text":"`+text+`"}`))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func apiCall(c *http.Client, p *proc, method, path, body string, out any) (int, error) {
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if out != nil && err == nil {
		err = json.Unmarshal(b, out)
	}
	return resp.StatusCode, err
}

// ---- /proc ----

func vmRSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// threadStat is one thread's /proc/<pid>/task/<tid>/schedstat: its time
// on CPU and the timeslices it ran (each a wake-up, for an idle thread).
type threadStat struct{ cpu, slices int64 }

// threadStats reads every thread of pid, by thread id.
func threadStats(pid int) (map[string]threadStat, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("no tasks for %d", pid)
	}
	out := make(map[string]threadStat, len(tasks))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		cpu, _ := strconv.ParseInt(f[0], 10, 64)
		slices, _ := strconv.ParseInt(f[2], 10, 64)
		out[filepath.Base(filepath.Dir(t))] = threadStat{cpu, slices}
	}
	return out, nil
}

// cpuNS is the time on CPU of all of pid's threads: the first field of
// each /proc/<pid>/task/*/schedstat, summed (/proc/<pid>/schedstat alone
// covers only the main thread).
func cpuNS(pid int) (int64, error) {
	ts, err := threadStats(pid)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range ts {
		sum += t.cpu
	}
	return sum, nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ---- marker ----

func epoch() string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	stat, _ := os.ReadFile("/proc/1/stat")
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // f[0] is field 3 (state)
	st := ""
	if len(f) >= 20 {
		st = f[19]
	}
	return strings.TrimSpace(string(boot)) + ":" + st
}

var theEpoch = epoch()

// writeMarkerTemp writes the marker's content to a temp file in home and
// returns its path; renameMarker then puts it in place atomically.
func writeMarkerTemp(home string) (string, error) {
	body := fmt.Sprintf(`{"action":"drain","requested_at":%q,"principal":"bench","epoch":%q,"suppress_notification":false,"request_id":%q}`,
		time.Now().UTC().Format(time.RFC3339Nano), theEpoch, randHex(8))
	tmp := filepath.Join(home, ".drain_request.json.tmp-"+randHex(8))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return "", err
	}
	f.Sync()
	return tmp, f.Close()
}

func markerPath(home string) string { return filepath.Join(home, ".drain_request.json") }

// ---- statistics ----

type durs []time.Duration

func (d durs) sorted() durs {
	c := append(durs(nil), d...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

// pct is the q-quantile (nearest rank) of d.
func (d durs) pct(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := d.sorted()
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

var _ = bytes.NewReader
var _ = syscall.SIGTERM
