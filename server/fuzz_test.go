package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// The fuzz targets here run their seeds under plain go test; `make fuzz`
// runs each for a while with -fuzz. Their properties: the code under test
// never panics, a body accepted has only exact field names (each once) and
// decodes as encoding/json decodes it, and every decode error is a 4xx
// *Error.

// decoderSeeds are bodies every decoder target starts from: valid and
// invalid JSON, case-folded and duplicate keys, wrong types, trailers.
var decoderSeeds = []string{
	``, ` `, "\n\t\r ", `{}`, ` {} `, `null`, `[]`, `"x"`, `1`, `true`, `{`, `}`, `{"`, `{"a"`, `{"a":`,
	`{"a":1}`, `{"a":1,}`, `{,}`, `{"a":1}{}`, `{} x`, `{}{}`, `{} `, `{"a":{"b":[1,{"c":null}]}}`,
	`{"\u0000":1}`, `{"\ud800":1}`, "{\"\xff\":1}", `{"a":"\u00e9"}`,
}

// fieldSeeds returns, for the field names of a body, bodies with each name
// exact, case-folded, escaped, duplicated and given each JSON type.
func fieldSeeds(names []string) []string {
	var out []string
	for _, n := range names {
		up := strings.ToUpper(n)
		title := strings.ToUpper(n[:1]) + n[1:]
		for _, v := range []string{`"x"`, `""`, `true`, `false`, `null`, `0`, `1.5`, `{}`, `[]`} {
			out = append(out, `{"`+n+`":`+v+`}`, `{"`+up+`":`+v+`}`, `{"`+title+`":`+v+`}`)
		}
		out = append(out, `{"`+n+`":"a","`+n+`":"b"}`, `{"`+n+`":true,"`+up+`":false}`,
			`{"\u00`+hexByte(n[0])+n[1:]+`":"x"}`, `{ "`+n+`" : "x" } `, `{"`+n+`":"x"} {"`+n+`":"y"}`)
	}
	all := make([]string, 0, len(names))
	for _, n := range names {
		all = append(all, `"`+n+`":"x"`)
	}
	return append(out, `{`+strings.Join(all, ",")+`}`)
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// fieldNames returns the exact json names decode accepts for T.
func fieldNames[T any]() []string {
	var names []string
	for n := range fieldsOf(reflect.TypeFor[T]()) {
		names = append(names, n)
	}
	return names
}

// fuzzDecoder is the body of every decoder fuzz target: it seeds f and
// checks decode's properties for body type T.
func fuzzDecoder[T any](f *testing.F, optional bool, extra ...string) {
	names := fieldNames[T]()
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	for _, s := range fieldSeeds(names) {
		f.Add([]byte(s))
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
	exact := map[string]bool{}
	for _, n := range names {
		exact[n] = true
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got T
		req, rerr := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		require.NoError(t, rerr)
		err := (&Server{}).decode(nil, req, &got, optional)
		if err != nil {
			e, ok := errors.AsType[*Error](err)
			switch {
			case !ok:
				require.Fail(t, fmt.Sprintf("decode error %T is not an *Error: %v", err, err))
			case e.Status < 400 || e.Status > 499:
				require.Fail(t, fmt.Sprintf("decode error has status %d, want 4xx: %v", e.Status, err))
			case e.Code == "" || e.Message == "":
				require.Fail(t, fmt.Sprintf("decode error without code or message: %#v", e))
			case e.Status == http.StatusRequestEntityTooLarge && len(body) <= MaxBodyBytes:
				require.Fail(t, fmt.Sprintf("413 for a body of %d bytes", len(body)))
			}
			return
		}
		require.LessOrEqualf(t, len(body), MaxBodyBytes, "accepted a body of %d bytes, over %d", len(body), MaxBodyBytes)
		if len(bytes.Trim(body, " \t\r\n")) == 0 {
			require.Truef(t, optional, "accepted an empty body %q for a required one", body)
			var zero T
			require.Equalf(t, zero, got, "an empty body decoded to %+v", got)
			return
		}
		require.Truef(t, json.Valid(body), "accepted invalid JSON %q", body)
		keys, ok := topLevelKeys(body)
		require.Truef(t, ok, "accepted %q, which is not a JSON object", body)
		seen := map[string]bool{}
		for _, k := range keys {
			require.Truef(t, exact[k], "accepted %q with key %q, not exactly one of %q", body, k, names)
			require.Falsef(t, seen[k], "accepted %q with key %q twice", body, k)
			seen[k] = true
		}
		var want T
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		require.NoErrorf(t, dec.Decode(&want), "accepted %q, which encoding/json refuses", body)
		require.Equalf(t, want, got, "%q decoded to %+v; encoding/json gives %+v", body, got, want)
	})
}

// topLevelKeys returns the keys of the JSON object data, in order and
// with repeats; ok is false when data is not one object.
func topLevelKeys(data []byte) (keys []string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
		keys = append(keys, key)
	}
	return keys, true
}

// FuzzDecodeDrainBody fuzzes the decoding of POST /api/gateway/drain.
func FuzzDecodeDrainBody(f *testing.F) {
	fuzzDecoder[api.DrainBody](f, true,
		`{"action":"drain","ACTION":"cancel"}`, `{"action":"drain","suppress_notification":true,"request_id":"r-1"}`,
		`{"action":"cancel","request_id":""}`, `{"suppress_notification":"false"}`, `{"action":"drain","force":true}`)
}

// FuzzDecodeShutdownBody fuzzes the decoding of POST /api/gateway/shutdown.
func FuzzDecodeShutdownBody(f *testing.F) {
	fuzzDecoder[api.ShutdownBody](f, true, `{"Force":true}`, `{"force":"true"}`, `{"force":false,"force":true}`, `{"now":true}`)
}

// FuzzDecodeMessageBody fuzzes the decoding of POST /v1/sessions/{id}/messages.
func FuzzDecodeMessageBody(f *testing.F) {
	fuzzDecoder[api.MessageBody](f, false, `{"TEXT":"hi"}`, `{"text":5}`, `{"text":"hi","Text":"ho"}`)
}

// FuzzDecodeEventBody fuzzes the decoding of POST /api/gateway/events.
func FuzzDecodeEventBody(f *testing.F) {
	fuzzDecoder[api.EventBody](f, false, `{"Session":"a","text":"b"}`, `{"session":"a","text":"b","x":1}`,
		`{"session":"a","text":"b","session":"c"}`)
}

// FuzzParseTokens fuzzes the parsing of a tokens file. Properties: it
// never panics; an error wraps ErrTokens and names the file; a file
// accepted holds at least one token, every "principal token" line's token
// of MinTokenLength or more looks up to its principal, and nothing else
// (the empty token, a line's principal) authenticates.
func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"", "\n", "# only a comment\n", "ops ops-token-0123456789\n", "ops ops-token-0123456789",
		"# ops team\n\nops  ops-token-0123456789\n  # indented\nci\tci-token-0123456789abc\n",
		"ops ops-token-0123456789\r\nci ci-token-0123456789abc\r\n", "ops short\n", "lonely\n",
		"ops ops-token-0123456789 extra\n", "a same-token-0123456789\nb same-token-0123456789\n",
		"ops\u00a0ops-token-0123456789\n", "ops ops-token-0123456789 # trailing comment\n",
		"#ops ops-token-0123456789\n", "ops #ops-token-0123456789\n", "\xff\xfe ops-token-0123456789\n",
		"ops ops-token-0123456789\x00\n", strings.Repeat("x y-token-0123456789\n", 3),
	} {
		f.Add([]byte(s))
	}
	const path = "fuzz/tokens"
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := parseTokens(path, data)
		if err != nil {
			require.ErrorIsf(t, err, ErrTokens, "error does not wrap ErrTokens")
			require.Containsf(t, err.Error(), path, "error does not name the file: %v", err)
			return
		}
		require.NotEqualf(t, 0, tokens.Len(), "accepted %q with no token", data)
		n := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			require.Lenf(t, fields, 2, "accepted %q with the line %q", data, line)
			require.GreaterOrEqualf(t, len(fields[1]), MinTokenLength, "accepted %q with the line %q", data, line)
			n++
			p, ok := tokens.Lookup(fields[1])
			require.Truef(t, ok, "token of line %q does not look up", line)
			require.Equalf(t, fields[0], p, "principal of the token of line %q", line)
			if len(fields[0]) < MinTokenLength {
				_, ok := tokens.Lookup(fields[0])
				require.Falsef(t, ok, "principal %q of line %q authenticates", fields[0], line)
			}
		}
		require.Equalf(t, tokens.Len(), n, "%d token lines but %d tokens", n, tokens.Len())
		_, ok := tokens.Lookup("")
		require.False(t, ok, "the empty token authenticates")
	})
}
