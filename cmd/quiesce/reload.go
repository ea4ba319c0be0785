package main

import (
	"log/slog"

	"github.com/quiesce-dev/quiesce/server"
)

// reloadTokens rereads the tokens file on SIGHUP: a file that passes every
// check replaces the tokens at once (requests already authenticated are
// not affected); one that fails a check (missing, malformed, readable by
// group or others) keeps the old tokens, and the reason is logged at ERROR.
func reloadTokens(logger *slog.Logger, tokens *server.Tokens, path string) {
	n, err := tokens.Reload(path)
	if err != nil {
		logger.Error("tokens reload failed; keeping the old tokens", "signal", "hangup", "file", path, "tokens", n, "error", err)
		return
	}
	logger.Info("tokens reloaded", "signal", "hangup", "file", path, "tokens", n)
}
