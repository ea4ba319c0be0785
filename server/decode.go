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
		return bodyError(err, "")
	}
	return decodeJSON(data, v, optional)
}

// decodeJSON decodes data into v, a pointer to a struct whose fields are
// all JSON scalars, strictly:
//
//   - data is one JSON object and nothing after it but white space;
//   - every key is exactly the json tag name of one field (encoding/json
//     alone would also accept "ACTION" for "action"; here that is an
//     unknown field), and no key appears twice (encoding/json alone would
//     keep the last);
//   - every value has its field's JSON type.
//
// checkObject walks the top-level object's tokens for the first two rules
// and the end; json.Unmarshal then decodes it (checkObject has refused
// every key that is not a field's exact name, so no key is unknown to it).
// An empty body (or only white space) leaves v untouched when optional is
// true and is a 400 otherwise. Every error is an *Error with a 400 status
// whose message names the field at fault, if one is.
func decodeJSON(data []byte, v any, optional bool) error {
	if len(bytes.TrimLeft(data, " \t\r\n")) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body is required (a JSON object)")
	}
	if err := checkObject(data, fieldsOf(reflect.TypeOf(v).Elem())); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return bodyError(err, "")
	}
	return nil
}

// checkObject checks that data is one JSON object, and nothing after it
// but white space, whose keys are each exactly one of fields, at most once.
func checkObject(data []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return bodyError(err, "")
	}
	if tok != json.Delim('{') {
		return badRequest("request body must be a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	var skip json.RawMessage // the values: their types are json.Unmarshal's to check
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bodyError(err, "")
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder only yields strings in key position
			return badRequest("invalid JSON body: object key is not a string")
		}
		if !fields[key] {
			return unknownField(key, fields)
		}
		if seen[key] {
			return badRequest("invalid JSON body: duplicate field %q", key)
		}
		seen[key] = true
		if err := dec.Decode(&skip); err != nil {
			return bodyError(err, key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return bodyError(err, "")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON body: data after the JSON object")
	}
	return nil
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

// bodyError maps an error of the JSON decoder, or of the body's reader
// (413 over MaxBodyBytes), to a 4xx *Error; key is the field being
// decoded, if any.
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
var fieldCache sync.Map // reflect.Type → map[string]bool

// fieldsOf returns the exact json tag names of the struct type t. It
// panics on a field checkObject cannot check exactly (a nested struct or
// map, whose own keys encoding/json would match loosely) or a field
// without a json name: request bodies are declared in this package.
func fieldsOf(t reflect.Type) map[string]bool {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
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
		m[name] = true
	}
	actual, _ := fieldCache.LoadOrStore(t, m)
	return actual.(map[string]bool)
}
