package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// haproxyFile is the checked-in load balancer configuration.
const haproxyFile = "haproxy/haproxy.cfg"

// fleetAnnounce is the announce D that docs/OPERATIONS.md and make fleet
// use with this configuration: the balancer must mark a gateway down
// within it.
const fleetAnnounce = 2 * time.Second

// haproxyBin returns the haproxy binary, or skips (QUIESCE_NO_HAPROXY=1)
// or fails with the install command when there is none.
func haproxyBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	if os.Getenv("QUIESCE_NO_HAPROXY") == "1" {
		t.Skip("haproxy is not installed and QUIESCE_NO_HAPROXY=1: skipping the load balancer test")
	}
	require.Fail(t, "this test runs the checked-in HAProxy configuration and needs haproxy: "+
		"sudo apt-get install -y --no-install-recommends haproxy (.ci/run does this), or skip it with QUIESCE_NO_HAPROXY=1")
	return ""
}

// haproxyCfg is a parsed HAProxy configuration: section ("global",
// "defaults", "frontend turns", "backend gateways", ...) -> its directive
// lines, whitespace-normalised, comments dropped.
type haproxyCfg map[string][]string

func parseHAProxy(data string) haproxyCfg {
	cfg := haproxyCfg{}
	section := ""
	for line := range strings.Lines(data) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			section = strings.Join(strings.Fields(trimmed), " ")
			continue
		}
		cfg[section] = append(cfg[section], strings.Join(strings.Fields(trimmed), " "))
	}
	return cfg
}

// with returns the directives of section that start with prefix.
func (c haproxyCfg) with(section, prefix string) []string {
	var out []string
	for _, d := range c[section] {
		if d == prefix || strings.HasPrefix(d, prefix+" ") {
			out = append(out, d)
		}
	}
	return out
}

// haproxyDuration parses an HAProxy time ("500ms", "10m", "2s", "30" = ms).
func haproxyDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	return time.ParseDuration(s)
}

// TestHAProxyConfigSettings: the settings docs/OPERATIONS.md promises are
// in the file: health checks on /readyz that mark a gateway down within
// the announce D, affinity by a consistent hash of the session id, only
// safe retries, redispatch, timeouts for long turns and streams, and
// nothing but turns and internal events routed.
func TestHAProxyConfigSettings(t *testing.T) {
	cfg := parseHAProxy(readFile(t, haproxyFile))
	be, turns, events := "backend gateways", "frontend turns", "frontend internal_events"
	for _, s := range []string{"global", "defaults", be, turns, events} {
		require.NotEmpty(t, cfg[s], "%s: no section %q", haproxyFile, s)
	}

	t.Run("health check on /readyz within the announce", func(t *testing.T) {
		assert.Equal(t, []string{"option httpchk"}, cfg.with(be, "option httpchk"))
		assert.Equal(t, []string{"http-check send meth GET uri /readyz"}, cfg.with(be, "http-check send"))
		assert.Equal(t, []string{"http-check expect status 200"}, cfg.with(be, "http-check expect"))
		ds := cfg.with(be, "default-server")
		require.Len(t, ds, 1)
		f := strings.Fields(ds[0])
		opt := map[string]string{}
		for i := 1; i < len(f); i++ {
			if f[i] == "check" {
				opt["check"] = "on"
			} else if i+1 < len(f) {
				opt[f[i]] = f[i+1]
				i++
			}
		}
		assert.Equal(t, "on", opt["check"], "default-server must enable check")
		inter, err := haproxyDuration(opt["inter"])
		require.NoError(t, err, "default-server inter")
		fall, err := strconv.Atoi(opt["fall"])
		require.NoError(t, err, "default-server fall")
		_, err = strconv.Atoi(opt["rise"])
		require.NoError(t, err, "default-server rise")
		timeoutCheck := time.Duration(0)
		if tc := cfg.with("defaults", "timeout check"); len(tc) == 1 {
			timeoutCheck, err = haproxyDuration(strings.Fields(tc[0])[2])
			require.NoError(t, err)
		}
		// Worst case: the first failing check starts inter after the last
		// good one, then fall checks, each up to timeout check.
		assert.LessOrEqual(t, time.Duration(fall)*inter+timeoutCheck, fleetAnnounce,
			"inter x fall + timeout check must fit in the announce D (%v) the docs and make fleet use", fleetAnnounce)
		for _, s := range cfg.with(be, "server") {
			assert.NotContains(t, s, "on-marked-down", "a gateway marked down finishes its turns: never cut them")
		}
	})

	t.Run("affinity by session", func(t *testing.T) {
		assert.Equal(t, []string{"balance hash var(txn.session)"}, cfg.with(be, "balance"))
		assert.Equal(t, []string{"hash-type consistent"}, cfg.with(be, "hash-type"))
		assert.Equal(t, []string{"http-request set-var(txn.session) path,field(4,/),url_dec"}, cfg.with(turns, "http-request set-var(txn.session)"))
		assert.Equal(t, []string{"http-request set-var(txn.session) req.body,json_query('$.session')"}, cfg.with(events, "http-request set-var(txn.session)"))
		assert.Equal(t, []string{"option http-buffer-request"}, cfg.with(events, "option http-buffer-request"), "the events frontend reads the session from the body")
	})

	t.Run("only safe retries, redispatched", func(t *testing.T) {
		retries := cfg.with("defaults", "retries")
		require.Len(t, retries, 1)
		n, err := strconv.Atoi(strings.Fields(retries[0])[1])
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, 1)
		assert.Equal(t, []string{"option redispatch 1"}, cfg.with("defaults", "option redispatch"))
		for _, s := range []string{"defaults", be} {
			for _, d := range cfg.with(s, "retry-on") {
				for _, unsafe := range strings.Fields(d)[1:] {
					assert.Contains(t, []string{"conn-failure", "0rtt-rejected"}, unsafe,
						"%s: retry-on %s may resend a turn that started (a 503 may be \"interrupted\")", s, unsafe)
				}
			}
		}
	})

	t.Run("timeouts for long turns and streams", func(t *testing.T) {
		get := func(name string) time.Duration {
			d := cfg.with("defaults", "timeout "+name)
			require.Len(t, d, 1, "timeout %s", name)
			v, err := haproxyDuration(strings.Fields(d[0])[2])
			require.NoError(t, err)
			return v
		}
		server, client := get("server"), get("client")
		assert.GreaterOrEqual(t, server, 5*time.Minute, "timeout server must outlast an agent's longest turn")
		assert.GreaterOrEqual(t, client, server, "timeout client must not cut a stream the server side still waits for")
		assert.Equal(t, []string{"option http-server-close"}, cfg.with("defaults", "option http-server-close"))
	})

	t.Run("only turns and events routed", func(t *testing.T) {
		assert.Equal(t, []string{`acl turn path_reg ^/v1/sessions/[^/]+/messages$`}, cfg.with(turns, "acl"))
		assert.Equal(t, []string{`acl events path /api/gateway/events`}, cfg.with(events, "acl"))
		for _, fe := range []string{turns, events} {
			ret := cfg.with(fe, "http-request return")
			require.Len(t, ret, 1, fe)
			assert.Contains(t, ret[0], "status 404")
			assert.Regexp(t, `unless (turn|events METH_POST)$`, ret[0])
		}
	})
}

// lbBackend is a stand-in gateway for the routing test: it answers every
// request with its name, and /readyz with ready.
type lbBackend struct {
	name string
	srv  *httptest.Server
}

func newLBBackend(t *testing.T, name string) *lbBackend {
	b := &lbBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusTeapot) // anything the balancer would not make itself
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// startHAProxyCfg runs the checked-in file with its binds on free ports and
// its servers pointing at addrs; it returns the two frontends' base URLs.
func startHAProxyCfg(t *testing.T, bin string, addrs []string) (turns, events string) {
	t.Helper()
	data := readFile(t, haproxyFile)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	turnsAddr, eventsAddr := free(), free()
	dir := t.TempDir()
	data = strings.Replace(data, "bind 127.0.0.1:8480", "bind "+turnsAddr, 1)
	data = strings.Replace(data, "bind 127.0.0.1:8481", "bind "+eventsAddr, 1)
	data = strings.Replace(data, "/run/haproxy/admin.sock", filepath.Join(dir, "admin.sock"), 1)
	servers := regexp.MustCompile(`(?m)^\s*server gw\d+ \S+\n`)
	first := true
	data = servers.ReplaceAllStringFunc(data, func(string) string {
		if !first {
			return ""
		}
		first = false
		var b strings.Builder
		for i, a := range addrs {
			fmt.Fprintf(&b, "    server gw%d %s\n", i+1, a)
		}
		return b.String()
	})
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", path)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	logs := make(chan string, 1)
	// Collects haproxy's log, for a failure's message.
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", <-logs)
		}
	})
	return "http://" + turnsAddr, "http://" + eventsAddr
}

// TestHAProxyRoutes runs the checked-in configuration in front of three
// stand-in gateways: haproxy -c accepts it; it routes turns by session
// (the same session always to the same gateway) and internal events by
// the session in their body to that same gateway; a gateway that refuses
// connections before the health check notices costs no request
// (redispatch); and nothing else (status page, static files, metrics,
// probes, admin API) gets through, on either port.
func TestHAProxyRoutes(t *testing.T) {
	bin := haproxyBin(t)
	out, err := exec.Command(bin, "-c", "-f", haproxyFile).CombinedOutput()
	require.NoError(t, err, "haproxy -c -f %s:\n%s", haproxyFile, out)

	var backends []*lbBackend
	var addrs []string
	for i := range 3 {
		b := newLBBackend(t, fmt.Sprintf("gw%d", i+1))
		backends = append(backends, b)
		addrs = append(addrs, strings.TrimPrefix(b.srv.URL, "http://"))
	}
	turnsURL, eventsURL := startHAProxyCfg(t, bin, addrs)
	hc := &http.Client{Timeout: 10 * time.Second}
	try := func(method, url, body string) (int, string, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Backend"), nil
	}
	do := func(method, url, body string) (int, string) {
		t.Helper()
		code, be, err := try(method, url, body)
		require.NoError(t, err, "%s %s", method, url)
		return code, be
	}
	// Wait (bounded) until the balancer forwards turns to all three.
	deadline := time.Now().Add(10 * time.Second)
	for up := map[string]bool{}; len(up) < 3; {
		code, be, err := try(http.MethodPost, fmt.Sprintf("%s/v1/sessions/warmup%d/messages", turnsURL, time.Now().UnixNano()), `{}`)
		if code == http.StatusTeapot {
			up[be] = true
		}
		require.True(t, time.Now().Before(deadline), "haproxy did not forward turns to all 3 gateways within 10s (last: %d %v; reached %v)", code, err, up)
		time.Sleep(20 * time.Millisecond)
	}

	owner := map[string]string{}
	used := map[string]bool{}
	for i := range 30 {
		session := fmt.Sprintf("s%d", i)
		for range 3 {
			code, be := do(http.MethodPost, turnsURL+"/v1/sessions/"+session+"/messages", `{"text":"hi"}`)
			require.Equal(t, http.StatusTeapot, code, "turn of %s not forwarded", session)
			if owner[session] == "" {
				owner[session] = be
			}
			assert.Equal(t, owner[session], be, "session %s moved between gateways", session)
			used[be] = true
		}
		code, be := do(http.MethodPost, eventsURL+"/api/gateway/events", fmt.Sprintf(`{"session":%q,"text":"job done"}`, session))
		require.Equal(t, http.StatusTeapot, code, "event of %s not forwarded", session)
		assert.Equal(t, owner[session], be, "the event of session %s went to another gateway than its turns", session)
	}
	assert.Len(t, used, 3, "30 sessions should spread over all 3 gateways")

	for _, c := range []struct{ port, method, path string }{
		{turnsURL, http.MethodGet, "/"},
		{turnsURL, http.MethodGet, "/static/page.js"},
		{turnsURL, http.MethodGet, "/metrics"},
		{turnsURL, http.MethodGet, "/healthz"},
		{turnsURL, http.MethodGet, "/readyz"},
		{turnsURL, http.MethodGet, "/api/gateway/status"},
		{turnsURL, http.MethodPost, "/api/gateway/drain"},
		{turnsURL, http.MethodPost, "/api/gateway/shutdown"},
		{turnsURL, http.MethodPost, "/api/gateway/events"},
		{turnsURL, http.MethodPost, "/v1/sessions/a/b/messages"},
		{eventsURL, http.MethodPost, "/api/gateway/drain"},
		{eventsURL, http.MethodPost, "/api/gateway/events/replay"},
		{eventsURL, http.MethodGet, "/api/gateway/events"},
		{eventsURL, http.MethodPost, "/v1/sessions/a/messages"},
		{eventsURL, http.MethodGet, "/"},
	} {
		code, be := do(c.method, c.port+c.path, `{}`)
		assert.Equal(t, http.StatusNotFound, code, "%s %s%s must not be routed (reached %q)", c.method, c.port, c.path, be)
		assert.Empty(t, be, "%s %s%s reached a gateway", c.method, c.port, c.path)
	}

	// A gateway that stops accepting connections: before a health check
	// notices, its sessions' turns are redispatched, none fails.
	var victim string
	for s, be := range owner {
		if be == "gw1" {
			victim = s
			break
		}
	}
	require.NotEmpty(t, victim, "no session on gw1")
	backends[0].srv.Close()
	code, be := do(http.MethodPost, turnsURL+"/v1/sessions/"+victim+"/messages", `{"text":"hi"}`)
	assert.Equal(t, http.StatusTeapot, code, "a turn for a session of a gateway that refuses connections must be redispatched")
	assert.NotEqual(t, "gw1", be)
}
