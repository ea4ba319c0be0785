package main_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// with a surviving same-epoch marker, no turn is answered before the
// first reconcile: requests queued in the listen backlog before the
// process serves must all be refused (503).
func TestE2ENoTurnBeforeASlowFirstReconcile(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	home := newHome(t)
	require.NoError(t, writeMarkerFile(home, []byte(fmt.Sprintf(
		`{"action":"drain","requested_at":%q,"principal":"ops","epoch":"boot-r2:100","suppress_notification":false,"request_id":"r2","padding":%q}`,
		time.Now().UTC().Format(time.RFC3339Nano), strings.Repeat("x", 1000_000)))))
	const n = 32
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					time.Sleep(200 * time.Microsecond)
					continue
				}
				defer c.Close()
				body := `{"text":"hi"}`
				fmt.Fprintf(c, "POST /v1/sessions/s%d/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", i, opsToken, len(body), body)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					codes <- -1
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
				return
			}
			codes <- -2
		})
	}
	time.Sleep(20 * time.Millisecond)
	p := startGateway(t, home, fakeProcRoot(t, "boot-r2", 100), "--addr", addr)
	wg.Wait()
	close(codes)
	for c := range codes {
		require.Equal(t, http.StatusServiceUnavailable, c, "a turn answered before the first reconcile")
	}
	_ = p
}

// on a taken address run exits 78 having changed nothing: the gateway
// never started, so it never wrote its state file.
func TestE2EAddrInUseChangesNothing(t *testing.T) {
	t.Parallel()
	first := startGateway(t, newHome(t), fakeProcRoot(t, "boot-m", 100))
	home := newHome(t)
	second := startProcess(t, home, fakeProcRoot(t, "boot-m", 100), "--addr", strings.TrimPrefix(first.url, "http://"))
	require.Equal(t, 78, second.wait())
	_, err := os.Stat(filepath.Join(home, "gateway_state.json"))
	assert.True(t, os.IsNotExist(err), "no state file: the gateway must not start before the address is claimed")
	assert.NotContains(t, second.stderr.String(), `"msg":"gateway started"`)
}
