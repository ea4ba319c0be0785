package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/quiesce-dev/quiesce/api"
)

// decode reads r's body into v (a pointer to one of the request body
// structs, at its zero value), reading at most MaxBodyBytes, with the
// rules of decodeJSON.
//
// The body is read once, into a pooled buffer (readRequestBody). The
// common body (an object of known keys with plain strings and booleans,
// see decodeFast) is then decoded from the buffer without a json.Decoder;
// any other body goes to decodeJSON (decodeRead).
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	bp, data, rerr := readRequestBody(r)
	defer putBodyBuf(bp)
	if rerr == nil && decodeFast(data, v) {
		return nil
	}
	return decodeRead(data, rerr, v, optional)
}

// decodeMessage is decode for a turn's body, a MessageBody, returning its
// text: the body clients send, {"text":"..."} with a plain string
// (plainMessage), is taken without reflection and without a MessageBody
// on the heap; any other goes through decode's steps.
func (s *Server) decodeMessage(w http.ResponseWriter, r *http.Request) (string, error) {
	bp, data, rerr := readRequestBody(r)
	defer putBodyBuf(bp)
	if rerr == nil {
		if text, ok := plainMessage(data); ok {
			return text, nil
		}
	}
	var body api.MessageBody
	if rerr == nil && decodeFast(data, &body) {
		return body.Text, nil
	}
	err := decodeRead(data, rerr, &body, false)
	return body.Text, err
}

// readRequestBody reads r's body into a pooled buffer (readBody, at most
// MaxBodyBytes), to be returned with putBodyBuf once data is no longer
// used. A body read to its end is closed: net/http then has nothing left
// to discard after the handler (its discard allocates a reader per
// request), and the connection stays reusable as before.
func readRequestBody(r *http.Request) (bp *[]byte, data []byte, err error) {
	bp = bodyBufs.Get().(*[]byte)
	var body io.Reader = http.NoBody
	if r.Body != nil {
		body = r.Body
	}
	data, err = readBody(body, (*bp)[:0], MaxBodyBytes)
	*bp = data
	if err == nil && r.Body != nil {
		_ = r.Body.Close()
	}
	return bp, data, err
}

func putBodyBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBody {
		bodyBufs.Put(bp)
	}
}

// decodeRead decodes what readRequestBody read, data and its error rerr,
// with decodeJSON, followed by rerr if the read had one, so the answer
// (and the 413 of an oversized body) is decodeJSON's, as if it had
// streamed the body itself.
func decodeRead(data []byte, rerr error, v any, optional bool) error {
	var body io.Reader = bytes.NewReader(data)
	if rerr != nil {
		body = io.MultiReader(body, errReader{rerr})
	}
	return decodeJSON(body, v, optional)
}

// plainMessage returns the text of data when data is exactly the object
// {"text": <a plain string>} with JSON white space around its tokens
// (what decodeFast accepts for a MessageBody with its one key), as a copy.
func plainMessage(data []byte) (string, bool) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return "", false
	}
	key, next, ok := plainString(data, skipSpace(data, i+1))
	if !ok || string(key) != "text" {
		return "", false
	}
	i = skipSpace(data, next)
	if i == len(data) || data[i] != ':' {
		return "", false
	}
	text, next, ok := plainString(data, skipSpace(data, i+1))
	if !ok {
		return "", false
	}
	i = skipSpace(data, next)
	if i == len(data) || data[i] != '}' || skipSpace(data, i+1) != len(data) {
		return "", false
	}
	return string(text), true
}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = MaxBodyBytes + 512

var bodyBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// readBody appends r's content to buf until EOF or an error, which it
// returns with what was read. Past limit bytes it stops with a
// *http.MaxBytesError and the first limit bytes, as r behind
// http.MaxBytesReader would give them (without that reader's allocation;
// its signal to close the connection never reached net/http anyway,
// the ResponseWriter here being the metrics' statusWriter).
func readBody(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		// Read at most one byte past the limit.
		room := buf[len(buf):min(cap(buf), limit+1)]
		n, err := r.Read(room)
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf[:limit], &http.MaxBytesError{Limit: int64(limit)}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// errReader returns err from every Read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeFast decodes data into v, which must be at its zero value, when
// data is a JSON object whose keys are exactly distinct field names of v
// and whose values are strings without escapes (into string and *string
// fields) or true/false (into bool and *bool fields), with only JSON white space
// around the tokens: the bodies clients send. It reports whether it did;
// on false v is zero again and decodeJSON must decide (an empty body, an
// error, an escape, a number, null, invalid UTF-8, ...). Whatever it
// accepts, decodeJSON accepts with the same result (FuzzDecodeFast).
func decodeFast(data []byte, v any) bool {
	target := reflect.ValueOf(v).Elem()
	if !parseFast(data, target, fieldsOf(target.Type())) {
		target.SetZero()
		return false
	}
	return true
}

func parseFast(data []byte, target reflect.Value, fields map[string]int) bool {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	var seen uint64
	for {
		key, next, ok := plainString(data, i)
		if !ok {
			return false
		}
		index, known := fields[string(key)]
		if !known || index >= 64 || seen&(1<<index) != 0 {
			return false
		}
		seen |= 1 << index
		i = skipSpace(data, next)
		if i == len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i, ok = setPlain(data, i, target.Field(index)); !ok {
			return false
		}
		i = skipSpace(data, i)
		if i == len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// setPlain decodes the value at data[i:] into f when it is a plain string
// for a string or *string field or a boolean literal for a bool or *bool
// field, returning the index after it.
func setPlain(data []byte, i int, f reflect.Value) (int, bool) {
	switch f.Kind() {
	case reflect.String:
		s, next, ok := plainString(data, i)
		if !ok {
			return 0, false
		}
		f.SetString(string(s))
		return next, true
	case reflect.Pointer:
		switch f.Type().Elem().Kind() {
		case reflect.String, reflect.Bool:
		default:
			return 0, false
		}
		p := reflect.New(f.Type().Elem())
		next, ok := setPlain(data, i, p.Elem())
		if !ok {
			return 0, false
		}
		f.Set(p)
		return next, true
	case reflect.Bool:
		switch {
		case bytes.HasPrefix(data[i:], []byte("true")):
			f.SetBool(true)
			return i + 4, true
		case bytes.HasPrefix(data[i:], []byte("false")):
			f.SetBool(false)
			return i + 5, true
		}
	}
	return 0, false
}

// plainString returns the content of the JSON string starting at data[i]
// when it has no escape, no control character and is valid UTF-8, and the
// index after its closing quote.
func plainString(data []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			s = data[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// decodeJSON decodes body into v, a pointer to a struct whose fields are
// all JSON scalars, strictly and in one streaming pass:
//
//   - the body is one JSON object and nothing after it but white space;
//   - every key is exactly the json tag name of one field (encoding/json
//     would also accept "ACTION" for "action"; here that is an unknown
//     field), and no key appears twice;
//   - every value has its field's JSON type;
//   - a body that body's reader refuses as over its limit
//     (*http.MaxBytesError) is a 413.
//
// An empty body (or only white space) leaves v untouched when optional is
// true and is a 400 otherwise. Every error is an *Error with a 4xx status
// whose message names the field at fault, if one is.
func decodeJSON(body io.Reader, v any, optional bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("server: decodeJSON into %T, want a pointer to a struct", v))
	}
	target := rv.Elem()
	fields := fieldsOf(target.Type())

	dec := json.NewDecoder(body)
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		if optional {
			return nil
		}
		return badRequest("request body is required (a JSON object)")
	case err != nil:
		return bodyError(err, "")
	}
	if tok != json.Delim('{') {
		return badRequest("request body must be a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bodyError(err, "")
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder only yields strings in key position
			return badRequest("invalid JSON body: object key is not a string")
		}
		index, known := fields[key]
		if !known {
			return unknownField(key, fields)
		}
		if seen[key] {
			return badRequest("invalid JSON body: duplicate field %q", key)
		}
		seen[key] = true
		if err := dec.Decode(target.Field(index).Addr().Interface()); err != nil {
			return bodyError(err, key)
		}
	}
	if tok, err := dec.Token(); err != nil {
		return bodyError(err, "")
	} else if tok != json.Delim('}') {
		return badRequest("invalid JSON body: object not closed")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := bodyError(err, ""); e.Status != http.StatusBadRequest {
				return e
			}
		}
		return badRequest("invalid JSON body: data after the JSON object")
	}
	return nil
}

// unknownField is the error for a key that is no field's exact name; a
// key that differs from one only in case says so.
func unknownField(key string, fields map[string]int) *Error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return badRequest("invalid JSON body: unknown field %q (field names are case-sensitive: did you mean %q?)", key, name)
		}
	}
	return badRequest("invalid JSON body: unknown field %q", key)
}

// bodyError maps an error of the JSON decoder (or of the body's reader
// underneath it) to a 4xx *Error; key is the field being decoded, if any.
func bodyError(err error, key string) *Error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
			Message: fmt.Sprintf("request body is over %d bytes", MaxBodyBytes), Err: err}
	}
	e := &Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Err: err}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		field := key
		if field == "" {
			field = typ.Field
		}
		e.Message = fmt.Sprintf("invalid JSON body: field %q must be a JSON %s, not %s",
			field, jsonKind(typ.Type.Kind()), jsonKindOfValue(typ.Value))
	case errors.As(err, &syntax):
		e.Message = "invalid JSON body: " + strings.TrimPrefix(syntax.Error(), "json: ")
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		e.Message = "invalid JSON body: unexpected end of JSON input"
	default:
		e.Message = fmt.Sprintf("reading request body: %v", err)
	}
	return e
}

// jsonKind names the JSON type a field of Go kind k takes.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	default:
		return "value of another type"
	}
}

// jsonKindOfValue names the JSON type of UnmarshalTypeError.Value ("bool",
// "string", "number", "number 1.5", "object", "array").
func jsonKindOfValue(v string) string {
	if v == "bool" {
		return "boolean"
	}
	kind, _, _ := strings.Cut(v, " ")
	return kind
}

// fieldCache holds fieldsOf's answer per struct type.
var fieldCache sync.Map // reflect.Type → map[string]int

// fieldsOf maps each exact json tag name of the struct type t to its field
// index. It panics on a field decodeJSON cannot decode exactly (a nested
// struct or map, whose own keys encoding/json would match loosely) or a
// field without a json name: request bodies are declared in this package.
func fieldsOf(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			panic(fmt.Sprintf("server: %s.%s has no json name", t, f.Name))
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
			panic(fmt.Sprintf("server: %s.%s is a %s; request bodies hold only scalars", t, f.Name, ft.Kind()))
		}
		m[name] = i
	}
	actual, _ := fieldCache.LoadOrStore(t, m)
	return actual.(map[string]int)
}
