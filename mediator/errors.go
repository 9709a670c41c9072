package mediator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The one mapping between errors and gRPC statuses, both ways. Messages
// carry what a client needs to act ("NAK 5: ...", "failed to connect
// after retries: timeout"), so the reference's clients keep matching on
// them and ours get typed errors back.

var flowsCodes = map[string]codes.Code{
	flows.EINVALID:      codes.InvalidArgument,
	flows.ENOTFOUND:     codes.NotFound,
	flows.ECONFLICT:     codes.AlreadyExists,
	flows.EUNAUTHORIZED: codes.Unauthenticated,
	flows.EFORBIDDEN:    codes.PermissionDenied,
	flows.EUNAVAILABLE:  codes.Unavailable,
	flows.ENOTIMPL:      codes.Unimplemented,
	flows.EINTERNAL:     codes.Internal,
}

// toStatus maps an error to the status a caller receives.
func toStatus(serial string, err error) error {
	var fe *flows.Error
	switch meterconn.Classify(err) {
	case meterconn.FailureNone:
		return nil
	case meterconn.FailureComm:
		return commStatus(serial, err)
	case meterconn.FailureRefused:
		var nak *emop.NakError
		errors.As(err, &nak)
		return status.Errorf(codes.FailedPrecondition, "NAK %d: %s", nak.Code, emop.NakMeaning(nak.Code))
	case meterconn.FailureCanceled:
		return status.Error(codes.Canceled, "canceled by the caller")
	}
	if errors.As(err, &fe) {
		c, ok := flowsCodes[fe.Code]
		if !ok {
			c = codes.Unknown // a code this transport does not carry; never OK
		}
		return status.Error(c, fe.Error())
	}
	return status.Errorf(codes.Internal, "Meter communication failed: %v", err)
}

// commStatus maps a communication failure (meterconn.FailureComm) to the
// reference mediator's status for it.
func commStatus(serial string, err error) error {
	var ce *meterconn.CommError
	var pe *meterconn.ProtocolError
	switch {
	case errors.Is(err, errNodeBusy):
		return status.Errorf(codes.ResourceExhausted, "Meter %s is busy (another Flows node is talking to it; try again)", serial)
	case errors.Is(err, meterconn.ErrBusy):
		return status.Errorf(codes.ResourceExhausted, "Meter %s is busy (timeout)", serial)
	case errors.As(err, &ce):
		return status.Errorf(codes.Unavailable, "failed to connect after retries: %s (meter %s, %d attempts)", ce.Kind, serial, ce.Attempts)
	case errors.As(err, &pe):
		return status.Errorf(codes.Unavailable, "failed to connect after retries: protocol (meter %s: %s)", serial, pe.Msg)
	}
	return status.Error(codes.DeadlineExceeded, "deadline exceeded before the meter answered")
}

var (
	nakRE  = regexp.MustCompile(`^NAK (\d+)`)
	commRE = regexp.MustCompile(`^failed to connect after retries: (\w+)(?: \(meter \S+, (\d+) attempts\))?`)
)

// fromStatus maps a status back to the error the transport would have
// returned in-process, so callers handle a mediator like a local client.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.ResourceExhausted:
		return fmt.Errorf("%s: %w", msg, meterconn.ErrBusy)
	case codes.FailedPrecondition:
		if m := nakRE.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return &emop.NakError{Code: uint8(n)}
		}
		return flows.Errorf(flows.EINVALID, "%s", msg)
	case codes.Unavailable:
		if m := commRE.FindStringSubmatch(msg); m != nil {
			kind := m[1]
			if kind == "protocol" {
				return &meterconn.ProtocolError{Msg: msg}
			}
			// The mediator made the attempts; say how many, once.
			attempts, _ := strconv.Atoi(m[2])
			return &meterconn.CommError{Kind: kind, Attempts: attempts, Err: errors.New("reported by the mediator")}
		}
		return flows.Errorf(flows.EUNAVAILABLE, "mediator unavailable: %s", msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	}
	for code, c := range flowsCodes {
		if c == st.Code() {
			return flows.Errorf(code, "%s", msg)
		}
	}
	return flows.Errorf(flows.EINTERNAL, "%s", msg)
}
