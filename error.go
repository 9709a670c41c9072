package flows

import (
	"errors"
	"fmt"
)

// Application error codes. The set is append-only: transports map each code
// to one HTTP status and one gRPC code, and clients map them back.
const (
	ECONFLICT     = "conflict"     // the request clashes with existing state (duplicate serial, token seen before)
	EINTERNAL     = "internal"     // a fault of ours; the message is generic, details go to the log
	EINVALID      = "invalid"      // the caller's input is malformed; Field names what was wrong
	ENOTFOUND     = "not_found"    // the thing does not exist, or is outside the caller's ESCO
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EFORBIDDEN    = "forbidden"    // valid credentials, insufficient role
	EUNAVAILABLE  = "unavailable"  // a dependency (meter, database) cannot be reached now; retrying may work
	ENOTIMPL      = "not_implemented"
	ETOOLARGE     = "too_large"          // the request is larger than Flows accepts
	EMETHOD       = "method_not_allowed" // the resource exists, not with this method
)

// Error is the one application error type. Its Message is safe to show to a
// user; Field, when set, names the input field that was wrong.
type Error struct {
	Code    string
	Field   string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID error naming field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorField returns the field named by the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorMessage returns the user-safe message of err: the *Error's text, or a
// generic message for internal errors so that no implementation detail leaks.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return "internal error"
}
