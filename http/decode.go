package http

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// maxBody is the largest request body Flows reads (1 MiB).
const maxBody = 1 << 20

// decode reads one JSON value into v, strictly: field names exactly as
// documented (encoding/json alone would take Standing_Charge for
// standing_charge), no unknown fields, types named in the error by the
// field's path and in JSON's words, one value only, at most maxBody
// bytes (ETOOLARGE past that).
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || len(body) > maxBody:
		return flows.Errorf(flows.ETOOLARGE, "the request body is over %d bytes", maxBody)
	case err != nil:
		return flows.FieldError("body", "could not be read")
	}
	if !json.Valid(body) {
		return flows.FieldError("body", "not valid JSON (one JSON value expected)")
	}
	if err := exactKeys(json.RawMessage(body), reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "body"
			}
			return flows.FieldError(field, "must be %s", jsonKind(te.Type))
		}
		var fe *flows.Error
		if errors.As(err, &fe) {
			return fe
		}
		return flows.FieldError("body", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// exactKeys checks that every object key of raw names a field of t by its
// exact JSON name, recursively, and that objects and arrays stand where t
// has them; path is the field path so far.
func exactKeys(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	where := path
	if where == "" {
		where = "body"
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil
	}
	c := trimmed[0]
	isNumber := c == '-' || (c >= '0' && c <= '9')
	switch {
	case t == reflect.TypeOf(decimal.Decimal{}):
		if c != '"' && !isNumber {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
		text := string(trimmed)
		if c == '"' {
			if err := json.Unmarshal(trimmed, &text); err != nil {
				return flows.FieldError(where, "must be %s", jsonKind(t))
			}
		}
		if _, err := decimal.NewFromString(text); err != nil {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
	case customJSON(t):
		return nil // a type with its own form (time.Time, netip.Addr) says what it takes
	case t.Kind() == reflect.String:
		if c != '"' {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
	case t.Kind() == reflect.Bool:
		if c != 't' && c != 'f' {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		if !isNumber {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
	case t.Kind() == reflect.Struct:
		var obj map[string]json.RawMessage
		if trimmed[0] != '{' || json.Unmarshal(trimmed, &obj) != nil {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
		fields := jsonFields(t)
		for k, v := range obj {
			ft, ok := fields[k]
			if !ok {
				return flows.FieldError(join(path, k), "unknown field (names are case-sensitive)")
			}
			if err := exactKeys(v, ft, join(path, k)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		var arr []json.RawMessage
		if trimmed[0] != '[' || json.Unmarshal(trimmed, &arr) != nil {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
		for _, e := range arr {
			if err := exactKeys(e, t.Elem(), path); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map:
		var obj map[string]json.RawMessage
		if trimmed[0] != '{' || json.Unmarshal(trimmed, &obj) != nil {
			return flows.FieldError(where, "must be %s", jsonKind(t))
		}
		for k, v := range obj {
			if err := exactKeys(v, t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// customJSON reports whether t decodes itself from JSON or text.
func customJSON(t reflect.Type) bool {
	for _, i := range []reflect.Type{reflect.TypeOf((*json.Unmarshaler)(nil)).Elem(), reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()} {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

// jsonFields maps a struct's JSON names (its json tags, embedded structs
// flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if strings.Contains(","+opts+",", ",string,") {
			out[name] = reflect.TypeOf(json.RawMessage{}) // encoding/json checks the quoted value itself
			continue
		}
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
			continue
		case f.Anonymous && name == "":
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// jsonKind names a Go type in JSON's words, for error messages.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(decimal.Decimal{}):
		return "a decimal amount (a string such as \"0.28430\")"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "an array"
	}
	return "an object"
}
