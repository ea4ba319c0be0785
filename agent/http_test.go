package agent

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestNewHTTPRefusesBadURLs: a URL that is not http(s)://host is refused
// with ErrInvalid, before any turn.
func TestNewHTTPRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "http://", "not a url", "/relative"} {
		_, err := NewHTTP(u, HTTPOptions{})
		assert.True(t, errors.Is(err, ErrInvalid), "%q: %v", u, err)
	}
}
