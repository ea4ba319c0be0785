package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/quiesce-dev/quiesce/api"
)

// decode reads r's body (at most MaxBodyBytes) into v, a pointer to one
// of the request body structs at its zero value, with decodeJSON's rules.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	var body io.Reader = http.NoBody
	if r.Body != nil {
		body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return bodyError(err)
	}
	return decodeJSON(data, v, optional)
}

// decodeJSON decodes data into v, a pointer to a struct whose fields are
// all JSON scalars, strictly:
//
//   - data is one JSON object and nothing after it but white space;
//   - every key is exactly the json tag name of one field, at most once
//     (no case-insensitive match, no duplicate, no unknown key);
//   - every value has its field's JSON type and fits it.
//
// Invalid UTF-8 in a string is replaced with U+FFFD rather than refused.
// An empty body (or only white space) leaves v untouched when optional is
// true and is a 400 otherwise. Every error is an *Error with a 400 status
// whose message names the field at fault, if one is.
func decodeJSON(data []byte, v any, optional bool) error {
	switch body := bytes.TrimLeft(data, " \t\r\n"); {
	case len(body) == 0 && optional:
		return nil
	case len(body) == 0:
		return badRequest("request body is required (a JSON object)")
	case bytes.HasPrefix(body, byteOrderMark):
		return badRequest("invalid JSON body: it starts with a byte-order mark (send UTF-8 without one)")
	case body[0] != '{': // the library would take null for an empty object
		return badRequest("request body must be a JSON object")
	}
	if err := json.Unmarshal(data, v, strictJSON); err != nil {
		return decodeError(err, data, reflect.TypeOf(v).Elem())
	}
	return nil
}

// byteOrderMark is UTF-8's, which JSON text must not start with.
var byteOrderMark = []byte("\xEF\xBB\xBF")

// strictJSON is decodeJSON's options on top of the JSON v2 library's
// defaults, which already match names exactly and refuse duplicate names
// and data after the value.
var strictJSON = json.JoinOptions(json.RejectUnknownMembers(true), jsontext.AllowInvalidUTF8(true))

// decodeError maps an error of json.Unmarshal of data into a body of type
// t to a 400 *Error whose message names the field at fault, if one is.
func decodeError(err error, data []byte, t reflect.Type) *Error {
	if serr, ok := errors.AsType[*json.SemanticError](err); ok {
		key := fieldName(serr.JSONPointer)
		want := jsonKind(serr.GoType)
		switch {
		case serr.Err == json.ErrUnknownName:
			return unknownField(key, fieldsOf(t))
		case key == "" || serr.GoType == nil:
		case serr.JSONKind == '0' && want == "number" && errors.Is(serr.Err, strconv.ErrRange):
			return badRequestErr(err, "invalid JSON body: field %q is out of range", key)
		default:
			return badRequestErr(err, "invalid JSON body: field %q must be a JSON %s, not %s", key, want, kindName(serr.JSONKind))
		}
	}
	if serr, ok := errors.AsType[*jsontext.SyntacticError](err); ok {
		key := fieldName(serr.JSONPointer)
		switch {
		case serr.Err == jsontext.ErrDuplicateName:
			return badRequestErr(err, "invalid JSON body: duplicate field %q", key)
		case errors.Is(serr.Err, io.ErrUnexpectedEOF):
			return badRequestErr(err, "invalid JSON body: unexpected end of JSON input")
		case key == "" && serr.ByteOffset > 0 && serr.ByteOffset <= int64(len(data)) &&
			jsontext.Value(data[:serr.ByteOffset]).IsValid(): // a whole value, then more
			return badRequestErr(err, "invalid JSON body: data after the JSON object")
		}
		return badRequestErr(err, "invalid JSON body: %s", serr.Err)
	}
	return badRequestErr(err, "invalid JSON body: %s", err)
}

// badRequestErr is a 400 bad_request *Error wrapping err.
func badRequestErr(err error, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Err: err, Message: fmt.Sprintf(format, args...)}
}

// fieldName is the top-level member a JSON pointer ("/text") names, or ""
// for the whole body.
func fieldName(p jsontext.Pointer) string {
	for name := range p.Tokens() {
		return name
	}
	return ""
}

// unknownField is the error for a key that is no field's exact name; a
// key that differs from one only in case says so.
func unknownField(key string, fields map[string]bool) *Error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return badRequest("invalid JSON body: unknown field %q (field names are case-sensitive: did you mean %q?)", key, name)
		}
	}
	return badRequest("invalid JSON body: unknown field %q", key)
}

// bodyError maps an error of the body's reader to a 4xx *Error: 413 over
// MaxBodyBytes, 400 otherwise.
func bodyError(err error) *Error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
			Message: fmt.Sprintf("request body is over %d bytes", MaxBodyBytes), Err: err}
	}
	return &Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Err: err,
		Message: fmt.Sprintf("reading request body: %v", err)}
}

// jsonKind names the JSON type a field of Go type t takes.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
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

// kindName names the JSON type of a value of kind k.
func kindName(k jsontext.Kind) string {
	switch k {
	case 't', 'f':
		return "boolean"
	case '{':
		return "object"
	case '[':
		return "array"
	default:
		return k.String() // null, string, number
	}
}

// fieldsOf returns the exact json tag names of the struct type t, for the
// hint of unknownField (an error path: not cached).
func fieldsOf(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && name != "-" && name != "" {
			m[name] = true
		}
	}
	return m
}
