package server

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// fuzzDecodeFast checks, for body type T, that whatever decodeFast
// accepts decodeJSON accepts with the same result, and that a body it
// declines leaves the target zero.
func fuzzDecodeFast[T any](f *testing.F, extra ...string) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	for _, s := range fieldSeeds(fieldNames[T]()) {
		f.Add([]byte(s))
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast T
		if !decodeFast(body, &fast) {
			var zero T
			require.Equalf(t, zero, fast, "declined %q but left %+v", body, fast)
			return
		}
		var slow T
		err := decodeJSON(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), MaxBodyBytes), &slow, false)
		require.NoErrorf(t, err, "decodeFast accepted %q, decodeJSON refused it", body)
		require.Equalf(t, slow, fast, "%q: decodeFast %+v, decodeJSON %+v", body, fast, slow)
	})
}

func FuzzDecodeFastMessage(f *testing.F) {
	fuzzDecodeFast[api.MessageBody](f, `{"text":"héllo"}`, "{\"text\":\"\xed\xa0\x80\"}", `{"text":"a\"b"}`,
		" \t{ \"text\" :\r\n\"x\" }\n", `{"text":"x",}`, `{"text":"x"`, `{"text":"x"}x`)
}

func FuzzDecodeFastDrain(f *testing.F) {
	fuzzDecodeFast[api.DrainBody](f, `{"action":"drain","suppress_notification":true,"request_id":"r1"}`,
		`{"suppress_notification":truex}`, `{"suppress_notification":fals}`, `{"action":null}`,
		`{"suppress_notification":false,"reason":"disk swap"}`, `{"suppress_notification":null}`,
		`{"reason":"a\nb"}`, `{"suppress_notification":"yes"}`)
}

func FuzzDecodeFastEvent(f *testing.F) {
	fuzzDecodeFast[api.EventBody](f, `{"session":"a","text":"b"}`, `{"session":"a","session":"b"}`)
}

func FuzzDecodeFastShutdown(f *testing.F) {
	fuzzDecodeFast[api.ShutdownBody](f, `{"force":true}`, `{"force":false}`, `{"force":"true"}`)
}

// TestDecodeFastTakesTheCommonBody checks that the bodies clients send do
// take the fast path.
func TestDecodeFastTakesTheCommonBody(t *testing.T) {
	var m api.MessageBody
	require.True(t, decodeFast([]byte(`{"text":"hello, agent"}`), &m), "decodeFast declined a plain message body")
	require.Equal(t, "hello, agent", m.Text)
	var d api.DrainBody
	require.True(t, decodeFast([]byte(`{"action":"cancel","request_id":"r1"}`), &d), "decodeFast declined a plain drain body")
	require.NotNil(t, d.Action, "drain body: %+v", d)
	require.Equal(t, "cancel", *d.Action)
	require.Equal(t, "r1", d.RequestID)
}

// TestDecodeAnswersAsDecodeJSON checks that decode, which reads the body
// before decoding it, answers every body, oversized ones included, as
// decodeJSON streaming it through http.MaxBytesReader does.
func TestDecodeAnswersAsDecodeJSON(t *testing.T) {
	pad := string(bytes.Repeat([]byte(" "), MaxBodyBytes))
	bodies := []string{
		``, `{"text":"x"}`, `{"text":5}`, `{"text":"x"} x`, `{"text":"x"}` + pad, `{"text":5` + pad,
		`{"text":"` + pad + `"}`, `[` + pad, `{"text":"x"}` + pad[:MaxBodyBytes-len(`{"text":"x"}`)],
		`{"TEXT":"x"}`, `{"text":"\u00e9"}`, `{"text":null}`,
	}
	for _, body := range bodies {
		var got, want api.MessageBody
		req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		gotErr := (&Server{}).decode(nil, req, &got, false)
		wantErr := decodeJSON(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader([]byte(body))), MaxBodyBytes), &want, false)
		short := body
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		assert.Equalf(t, want, got, "%q: decode (error %v) against decodeJSON (error %v)", short, gotErr, wantErr)
		assert.Equalf(t, errorOrNil(wantErr), errorOrNil(gotErr), "%q: decode's error against decodeJSON's", short)
	}
}

// errorOrNil returns what a client sees of err: status, code, message.
func errorOrNil(err error) any {
	if err == nil {
		return nil
	}
	e := errorFor(err)
	return [3]any{e.Status, e.Code, e.Message}
}

// FuzzPlainMessage checks that whatever plainMessage accepts, decodeJSON
// accepts as a MessageBody with the same text (and so does decodeFast).
func FuzzPlainMessage(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{`{"text":"héllo"}`, " \t{ \"text\" :\r\n\"x\" }\n", `{"text":"x",}`, `{"text":"x"`,
		`{"text":"x"}x`, `{"Text":"x"}`, `{"text":"a\"b"}`, `{"text":"x","text":"y"}`, `{"text":""}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		text, ok := plainMessage(body)
		if !ok {
			return
		}
		var slow api.MessageBody
		err := decodeJSON(bytes.NewReader(body), &slow, false)
		require.NoErrorf(t, err, "plainMessage accepted %q, decodeJSON refused it", body)
		require.Equalf(t, text, slow.Text, "%q: plainMessage %q, decodeJSON %q", body, text, slow.Text)
		var fast api.MessageBody
		require.Truef(t, decodeFast(body, &fast), "%q: plainMessage took it, decodeFast declined", body)
		require.Equalf(t, text, fast.Text, "%q: plainMessage against decodeFast", body)
	})
}

// TestPlainMessage checks which turn bodies plainMessage takes: only
// {"text":...} with a plain string; the rest is decode's to answer.
func TestPlainMessage(t *testing.T) {
	for body, want := range map[string]bool{
		`{"text":"hello, agent"}`:       true,
		" {\n\t\"text\" : \"héllo\" } ": true,
		`{"text":""}`:                   true,
		`{}`:                            false,
		`{"Text":"x"}`:                  false,
		`{"text":"a\"b"}`:               false,
		`{"text":"x","text":"y"}`:       false,
		`{"text":"x"} {}`:               false,
		`{"text":"x"`:                   false,
		`{"text":1}`:                    false,
		"{\"text\":\"\xff\"}":           false,
		"{\"text\":\"a\nb\"}":           false,
		``:                              false,
	} {
		text, ok := plainMessage([]byte(body))
		assert.Equalf(t, want, ok, "plainMessage(%q) ok = %v, want %v", body, ok, want)
		if ok {
			assert.Containsf(t, body, `"`+text+`"`, "plainMessage(%q) = %q", body, text)
		}
	}
}
