package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// encodingJSONMessage is what writeJSON (json.Encoder.Encode) writes for
// resp: the reference appendMessage must match byte for byte.
func encodingJSONMessage(t testing.TB, resp api.MessageResponse) []byte {
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(resp))
	return buf.Bytes()
}

// messageEncodingCases are strings that exercise every branch of
// appendJSONString: each escape encoding/json makes, and what it leaves.
var messageEncodingCases = []string{
	"",
	"hello, agent",
	`quote " and backslash \ and slash /`,
	"\b\f\n\r\t",
	"\x00\x01\x07\x0b\x0e\x1f\x7f",
	"<script>alert('x') & more</script>",
	"line\u2028separator\u2029paragraph",
	"\u2027\u202a near the separators",
	"héllo wörld, 日本語, emoji 😀",
	"invalid \xff byte",
	"truncated \xe2\x80",
	"\xc0\xaf overlong, \xed\xa0\x80 surrogate",
	"\xf4\x90\x80\x80 above U+10FFFF",
	"\ufffd the replacement character itself",
	strings.Repeat("long ", 300) + "\n",
}

// TestAppendMessageMatchesEncodingJSON checks the table: for every case
// as session and as reply, appendMessage writes what encoding/json does.
func TestAppendMessageMatchesEncodingJSON(t *testing.T) {
	for _, s := range messageEncodingCases {
		for _, resp := range []api.MessageResponse{{Session: s, Reply: "r"}, {Session: "s", Reply: s}, {Session: s, Reply: s}} {
			want := encodingJSONMessage(t, resp)
			got := appendMessage(nil, resp)
			assert.Truef(t, bytes.Equal(got, want), "appendMessage(%+q)\n got %q\nwant %q", resp, got, want)
		}
	}
	// It appends: what dst held stays in front.
	got := appendMessage([]byte("x"), api.MessageResponse{Session: "s", Reply: "r"})
	assert.Equalf(t, "x{\"session\":\"s\",\"reply\":\"r\"}\n", string(got), "appendMessage after x = %q", got)
}

// FuzzAppendMessage checks appendMessage against encoding/json on any
// session and reply, valid UTF-8 or not.
func FuzzAppendMessage(f *testing.F) {
	for _, s := range messageEncodingCases {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, session, reply string) {
		resp := api.MessageResponse{Session: session, Reply: reply}
		want := encodingJSONMessage(t, resp)
		got := appendMessage(nil, resp)
		require.Truef(t, bytes.Equal(got, want), "appendMessage(%+q)\n got %q\nwant %q", resp, got, want)
	})
}
