package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/quiesce-dev/quiesce/server"
)

// reloadTokens rereads the tokens file on SIGHUP: a file that passes every
// check replaces the tokens at once (requests already authenticated are
// not affected); one that fails a check (missing, malformed, readable by
// group or others) keeps the old tokens, and the reason is logged at ERROR.
// Either way the outcome is counted in metrics
// (quiesce_tokens_reload_total, quiesce_tokens_last_reload_successful and
// the time of the last good load) and a service manager is told (systemd:
// RELOADING=1 before, READY=1 with a STATUS= naming the outcome after).
func reloadTokens(logger *slog.Logger, tokens *server.Tokens, path string, metrics *server.Metrics, systemd *systemdNotifier) {
	systemd.reloading()
	n, err := tokens.Reload(path)
	metrics.TokensReloaded(time.Now(), err)
	if err != nil {
		logger.Error("tokens reload failed; keeping the old tokens", "signal", "hangup", "file", path, "tokens", n, "error", err)
		systemd.reloaded(false, fmt.Sprintf("tokens reload failed, still using the old %d %s (a restart would exit 78): %s",
			n, plural(n, "token", "tokens"), stripPrefixes(err.Error())))
		return
	}
	logger.Info("tokens reloaded", "signal", "hangup", "file", path, "tokens", n)
	systemd.reloaded(true, fmt.Sprintf("tokens reloaded: %d %s", n, plural(n, "token", "tokens")))
}
