package main_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bounds of the browser test. reactBound is the functional deadline for
// the page to show what a button did (the drain is reconciled before the
// POST answers, and the long-poll wakes on that change).
const (
	browserBound = 90 * time.Second // the whole browser session
	stepBound    = 15 * time.Second // loading, typing, one outside change
	reactBound   = time.Second
)

// chromiumPath returns the Chromium to drive. Without one the test fails,
// so a CI without a browser cannot pass silently; QUIESCE_NO_BROWSER=1
// skips it with a message instead.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("QUIESCE_NO_BROWSER") == "1" {
		t.Skip("QUIESCE_NO_BROWSER=1: skipping the status page test in a real browser")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	require.Fail(t, "the status page test needs Chromium (apt-get install chromium; .ci/run installs it), "+
		"or QUIESCE_NO_BROWSER=1 to skip it")
	return ""
}

// browser starts a headless Chromium with a fresh profile, kept off the
// network except for loopback (no background networking, component
// updates, sync, QUIC or proxy), and returns a context for its first tab.
// problems returns the script errors, uncaught exceptions and security
// messages (a Content-Security-Policy violation) of the page so far;
// network errors (the favicon's 404) are not counted.
func browser(t *testing.T) (ctx context.Context, problems func() []string) {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("no-proxy-server", true),
	)
	base, cancelBase := context.WithTimeout(context.Background(), browserBound)
	alloc, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	require.NoError(t, chromedp.Do(ctx), "start %s", path)

	var mu sync.Mutex // guards found: the console reader appends from its goroutine
	var found []string
	console := chromedp.Console(ctx)
	done := make(chan struct{}) // closed when the console reader has returned
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			if (m.Type == chromedp.ConsoleError || m.IsException()) && m.Source != "network" {
				mu.Lock()
				found = append(found, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		cancelBase()
		select {
		case <-done:
		case <-time.After(stepBound):
			assert.Fail(t, fmt.Sprintf("the console reader did not end within %v of closing the browser", stepBound))
		}
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), found...)
	}
}

// within runs steps in ctx, failing with what after bound.
func within(t *testing.T, ctx context.Context, bound time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	require.NoError(t, chromedp.Do(c, steps...), "%s (bound %v)", what, bound)
}

// get runs one action that returns a value in ctx, within stepBound.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepBound)
	defer cancel()
	v, err := chromedp.Run(c, a)
	require.NoError(t, err, what)
	return v
}

// css selects the first element that matches a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// stateShown waits for the page's state badge to read state.
func stateShown(state string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(css(fmt.Sprintf(`#state[data-state=%q]`, state)))
}

// TestE2EStatusPage drives the status page of the real binary in a
// headless Chromium: the page loads without a token; with the token
// entered it shows the drain request; Drain turns the page to draining
// and Cancel back to running, each within a second; a drain from outside
// the page shows up live; "Drain again (refresh)" after a CLI drain with
// --suppress-notification and --request-id keeps both; a turn in flight
// is listed and the lifecycle events are shown; the token lives in
// sessionStorage only; a wrong token is reported in the page; a
// screenshot is not blank; and with JavaScript off the page still shows
// the state and since when, read-only, with nothing that needs a token.
func TestE2EStatusPage(t *testing.T) {
	t.Parallel()
	needBinary(t)
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-a", 100), "--agent-work", "1m")
	ctx, problems := browser(t)

	within(t, ctx, stepBound, "load the page",
		chromedp.Navigate(p.url+"/"),
		stateShown("running"),
		chromedp.WaitVisible(css(`#control`)), // the script ran
	)
	assert.Equal(t, "0", get(t, ctx, "turns in flight", chromedp.Text(css(`#in-flight`))))
	assert.Equal(t, "none in flight", get(t, ctx, "oldest turn", chromedp.Text(css(`#oldest`))))

	within(t, ctx, stepBound, "enter the token",
		chromedp.SendKeys(css(`#token`), opsToken),
		chromedp.Click(css(`#token-use`)),
		chromedp.WaitVisible(css(`#drain-panel`)),
		chromedp.WaitVisible(css(`#drain-none`)),
	)
	_ = get(t, ctx, "the page follows changes live",
		chromedp.Poll[bool](`document.getElementById("live").textContent.startsWith("Live")`, chromedp.WithPollingInterval(20*time.Millisecond)))

	t.Run("Drain", func(t *testing.T) {
		within(t, ctx, stepBound, "press Drain", chromedp.Click(css(`#drain-btn`)))
		within(t, ctx, reactBound, "the page shows draining", stateShown("draining"))
		assert.Equal(t, "draining", p.status()["state"], "the gateway drains")
		m := readMarker(t, home)
		require.NotNil(t, m, "the drain marker is written")
		within(t, ctx, stepBound, "the drain request is shown", chromedp.WaitVisible(css(`#drain-info`)))
		assert.Equal(t, "ops", get(t, ctx, "principal", chromedp.Text(css(`#drain-principal`))))
		assert.Equal(t, m["request_id"], get(t, ctx, "request id", chromedp.Text(css(`#drain-request-id`))))
		assert.Contains(t, get(t, ctx, "drain status", chromedp.Text(css(`#drain-status`))), "active")

		buf := get(t, ctx, "screenshot", chromedp.FullScreenshot(100))
		shot := filepath.Join(t.TempDir(), "status-page-draining.png")
		require.NoError(t, os.WriteFile(shot, buf, 0o600))
		distinct, inked := pngInk(t, buf)
		t.Logf("screenshot %s: %d distinct colours, %.1f%% not white", shot, distinct, inked*100)
		assert.Greater(t, distinct, 8, "the screenshot has text and colour, not a blank page")
		assert.Greater(t, inked, 0.01, "the screenshot is not blank")
	})

	t.Run("Cancel", func(t *testing.T) {
		within(t, ctx, stepBound, "press Cancel", chromedp.Click(css(`#cancel-btn`)))
		within(t, ctx, reactBound, "the page shows running", stateShown("running"))
		assert.Equal(t, "running", p.status()["state"], "the drain is cancelled")
		assert.Nil(t, readMarker(t, home), "the marker is removed")
		within(t, ctx, stepBound, "no drain request shown", chromedp.WaitVisible(css(`#drain-none`)))
	})

	t.Run("OutsideChangeShowsLive", func(t *testing.T) {
		r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"drain","request_id":"from-the-cli"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		within(t, ctx, stepBound, "the page follows a drain made elsewhere",
			stateShown("draining"),
			chromedp.WaitVisible(css(`#drain-info`)),
		)
		assert.Equal(t, "from-the-cli", get(t, ctx, "request id", chromedp.Text(css(`#drain-request-id`))))
		r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		within(t, ctx, stepBound, "the page follows the cancel", stateShown("running"))
	})

	t.Run("RefreshKeepsTheRequest", func(t *testing.T) {
		env := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
		out, errOut, code := cli(t, env, "drain", "--suppress-notification", "--request-id", "maint-42", "--reason", "kernel update")
		require.Equal(t, 0, code, "quiesce drain: %s%s", out, errOut)
		before := readMarker(t, home)
		require.NotNil(t, before)
		within(t, ctx, stepBound, "the page shows the CLI's drain", stateShown("draining"), chromedp.WaitVisible(css(`#drain-info`)))
		_ = get(t, ctx, "the page shows the CLI's request id",
			chromedp.Poll[bool](`document.getElementById("drain-request-id").textContent === "maint-42"`, chromedp.WithPollingInterval(20*time.Millisecond)))
		assert.Equal(t, "yes", get(t, ctx, "suppress shown", chromedp.Text(css(`#drain-suppress`))))
		assert.Equal(t, "kernel update", get(t, ctx, "reason shown", chromedp.Text(css(`#drain-reason`))))
		assert.Equal(t, "kernel update", get(t, ctx, "the reason field follows the active drain", chromedp.Evaluate[string](`document.getElementById("reason").value`)))
		assert.True(t, get(t, ctx, "the suppress box follows the active drain", chromedp.Evaluate[bool](`document.getElementById("suppress").checked`)))
		assert.Equal(t, "Drain again (refresh)", get(t, ctx, "button", chromedp.Text(css(`#drain-btn`))))
		assert.Contains(t, get(t, ctx, "expiry countdown", chromedp.Text(css(`#drain-expires-at`))), "in ")
		assert.Regexp(t, `^draining for \d+s$`, get(t, ctx, "state since", chromedp.Text(css(`#state-since`))))

		within(t, ctx, stepBound, "press Drain again (refresh)", chromedp.Click(css(`#drain-btn`)))
		_ = get(t, ctx, "the page has the drain's answer",
			chromedp.Poll[bool](`/^Drain re(quested|freshed) /.test(document.getElementById("notice").textContent)`, chromedp.WithPollingInterval(20*time.Millisecond)))
		after := readMarker(t, home)
		require.NotNil(t, after)
		assert.Equal(t, "maint-42", after["request_id"], "the refresh keeps the request id")
		assert.Equal(t, true, after["suppress_notification"], "the refresh keeps suppress_notification")
		assert.Equal(t, "kernel update", after["reason"], "the refresh keeps the reason")
		assert.NotEqual(t, before["requested_at"], after["requested_at"], "the refresh renews requested_at")
		d, _ := p.status()["drain"].(map[string]any)
		require.NotNil(t, d)
		assert.Equal(t, "maint-42", d["request_id"])
		assert.Equal(t, true, d["suppress_notification"])
		assert.Equal(t, "kernel update", d["reason"])
		assert.Contains(t, get(t, ctx, "notice", chromedp.Text(css(`#notice`))), "Drain refreshed (request id maint-42, suppress notification yes)")

		_ = get(t, ctx, "the history shows the drain",
			chromedp.Poll[bool](`[...document.querySelectorAll("#history li[data-kind=drain]")].some(li => li.textContent.includes("drain requested by ops: \"kernel update\"") && li.textContent.includes("maint-42"))`,
				chromedp.WithPollingInterval(20*time.Millisecond)))
		r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		within(t, ctx, stepBound, "the page follows the cancel", stateShown("running"))
	})

	t.Run("TurnsInFlightListed", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(context.Background(), stepBound)
		defer cancel()
		req, err := http.NewRequestWithContext(tctx, http.MethodPost, p.url+"/v1/sessions/page-parked/messages", strings.NewReader(`{"text":"hold"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+opsToken)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		within(t, ctx, stepBound, "the page lists the parked turn",
			chromedp.WaitVisible(css(`#turns tr[data-session="page-parked"]`)),
		)
		row := get(t, ctx, "the turn's row", chromedp.Text(css(`#turns tr[data-session="page-parked"]`)))
		assert.Contains(t, row, "user")
		cancel() // the client goes away: the turn is cancelled
		select {
		case <-done:
		case <-time.After(stepBound):
			require.Fail(t, "the parked turn's request did not end")
		}
		p.waitInFlight(0)
		within(t, ctx, stepBound, "the list empties", chromedp.WaitVisible(css(`#turns-none`)))
	})

	t.Run("TokenInSessionStorageOnly", func(t *testing.T) {
		assert.Equal(t, opsToken, get(t, ctx, "sessionStorage", chromedp.Evaluate[string](`sessionStorage.getItem("quiesce.token") || ""`)))
		assert.Zero(t, get(t, ctx, "localStorage", chromedp.Evaluate[int](`localStorage.length`)), "nothing in localStorage")
		assert.Empty(t, get(t, ctx, "cookies", chromedp.Evaluate[string](`document.cookie`)), "no cookies")
		assert.NotContains(t, get(t, ctx, "location", chromedp.Location()), opsToken, "the token never lands in the URL")
	})

	t.Run("WrongTokenIsReported", func(t *testing.T) {
		within(t, ctx, stepBound, "enter a wrong token",
			chromedp.Click(css(`#token-forget`)),
			chromedp.SendKeys(css(`#token`), "not-the-token"),
			chromedp.Click(css(`#token-use`)),
			chromedp.WaitVisible(css(`#error`)),
			chromedp.WaitNotVisible(css(`#drain-panel`)),
		)
		assert.Contains(t, get(t, ctx, "error", chromedp.Text(css(`#error`))), "token was refused")
		assert.Empty(t, get(t, ctx, "sessionStorage", chromedp.Evaluate[string](`sessionStorage.getItem("quiesce.token") || ""`)),
			"a refused token is not kept")
	})

	// Last, as it turns the tab's scripts off. DevTools can still read
	// the page through Runtime.evaluate; the page's own script never runs.
	t.Run("JavaScriptOff", func(t *testing.T) {
		r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"drain","request_id":"maint-99","reason":"kernel update"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		within(t, ctx, stepBound, "load the page without JavaScript",
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
				return err
			}),
			chromedp.Navigate(p.url+"/"),
		)
		eval := func(expr string) string {
			return get(t, ctx, expr, chromedp.Evaluate[string](expr))
		}
		assert.Equal(t, "draining", eval(`document.getElementById("state").textContent`), "the state is shown without JavaScript")
		assert.Regexp(t, `^draining for \d+s$`, eval(`document.getElementById("state-since").textContent`))
		assert.Equal(t, "0", eval(`document.getElementById("spooled").textContent`))
		assert.Equal(t, "0", eval(`document.getElementById("webhook-pending").textContent`))
		html := eval(`document.documentElement.outerHTML`)
		assert.Contains(t, html, `href="/metrics"`)
		for _, secret := range []string{"maint-99", "kernel update", "page-parked", opsToken} {
			assert.NotContains(t, html, secret, "nothing that needs a token without JavaScript")
		}
		assert.Equal(t, "0", eval(`document.getElementById("in-flight").textContent`))
		assert.Equal(t, "true", eval(`String(document.getElementById("control").hidden)`), "no controls without JavaScript: read-only")
		assert.Contains(t, eval(`document.documentElement.outerHTML`), "JavaScript is off")
		assert.NotContains(t, eval(`document.getElementById("live").textContent`), "Live", "the page's script did not run")
		distinct, inked := pngInk(t, get(t, ctx, "screenshot", chromedp.FullScreenshot(100)))
		assert.Greater(t, distinct, 8, "the page without JavaScript is not blank")
		assert.Greater(t, inked, 0.01, "the page without JavaScript is not blank")
	})

	assert.Empty(t, problems(), "no script errors, exceptions or CSP violations in the page")
}

// pngInk decodes a PNG and returns its number of distinct colours and the
// share of pixels that are not white.
func pngInk(t *testing.T, data []byte) (distinct int, inked float64) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err, "decode the screenshot")
	b := img.Bounds()
	require.False(t, b.Empty(), "an empty screenshot")
	colours := map[[4]uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
			if !white(r, g, bl) {
				nonWhite++
			}
		}
	}
	return len(colours), float64(nonWhite) / float64(b.Dx()*b.Dy())
}

func white(r, g, b uint32) bool { return r > 0xf000 && g > 0xf000 && b > 0xf000 }
