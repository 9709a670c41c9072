package http

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/flows-energy/flows"
)

// httpStatus maps error codes to HTTP statuses: the one table of this
// transport.
var httpStatus = map[string]int{
	flows.EINVALID:      http.StatusBadRequest,
	flows.EUNAUTHORIZED: http.StatusUnauthorized,
	flows.EFORBIDDEN:    http.StatusForbidden,
	flows.ENOTFOUND:     http.StatusNotFound,
	flows.ECONFLICT:     http.StatusConflict,
	flows.EUNAVAILABLE:  http.StatusServiceUnavailable,
	flows.ENOTIMPL:      http.StatusNotImplemented,
	flows.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	flows.EMETHOD:       http.StatusMethodNotAllowed,
	flows.EINTERNAL:     http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem document, with the error's stable code
// and the offending field.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
}

// writeError renders err as problem+json; only internal errors are logged
// (with their detail, which the client does not see).
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := flows.ErrorCode(err)
	status := httpStatus[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if code == flows.EINTERNAL {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	p := Problem{Type: "https://flows.energy/problems/" + code, Title: http.StatusText(status), Status: status,
		Detail: flows.ErrorMessage(err), Code: code, Field: flows.ErrorField(err)}
	var fe *flows.Error
	if errors.As(err, &fe) {
		p.Detail = fe.Message
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
