package emop

import (
	"errors"
	"fmt"
)

// ErrTruncated means the bytes end before the frame (or payload) does. A
// stream reader treats it as "read more"; a one-shot decoder as an error.
var ErrTruncated = errors.New("emop: truncated")

// DelimiterError is returned when a frame does not start with 0x7E.
type DelimiterError struct{ Got byte }

func (e *DelimiterError) Error() string {
	return fmt.Sprintf("emop: frame starts with 0x%02x, not the 0x7e delimiter", e.Got)
}

// LengthError is returned when a length does not fit what it describes:
// a frame's length byte, or a payload's size for its object.
type LengthError struct {
	What string // "frame", "data field", or an object or record name
	Got  int
	Want string // "13..255", "4", "at least 5"...
}

func (e *LengthError) Error() string {
	return fmt.Sprintf("emop: %s length %d, want %s", e.What, e.Got, e.Want)
}

// CRCError is returned when a frame's CRC does not match its bytes. The
// frame is still returned by DecodeFrame, for diagnosis.
type CRCError struct {
	Want uint16 // computed over the frame's bytes
	Got  uint16 // carried by the frame
}

func (e *CRCError) Error() string {
	return fmt.Sprintf("emop: CRC mismatch: frame carries %04x, bytes give %04x", e.Got, e.Want)
}

// NakError is a meter's negative acknowledgement (control bits 3..7).
type NakError struct{ Code uint8 }

func (e *NakError) Error() string {
	return fmt.Sprintf("emop: meter answered NAK %d (%s)", e.Code, NakMeaning(e.Code))
}

// NAK codes (SS0001 section 1.2.5.1).
const (
	NakOK            = 0
	NakCRC           = 1 // the meter saw a CRC error in our frame
	NakFormat        = 2 // frame formatting error
	NakLength        = 3 // frame or data object length incorrect
	NakPayloadTooBig = 4 // maximum requested data payload exceeded
	NakUnknownObject = 5 // data object not recognised
	NakSecurity      = 6 // security level not granted / read-only / storage condition
	NakAddress       = 7 // frame address incorrect
)

// NakMeaning describes a NAK code for people.
func NakMeaning(code uint8) string {
	switch code {
	case NakOK:
		return "ok"
	case NakCRC:
		return "frame CRC error"
	case NakFormat:
		return "frame formatting error"
	case NakLength:
		return "frame or data object length incorrect"
	case NakPayloadTooBig:
		return "maximum requested data payload exceeded"
	case NakUnknownObject:
		return "data object not recognised"
	case NakSecurity:
		return "security level not granted, object read-only, or value refused"
	case NakAddress:
		return "frame address incorrect"
	}
	return "unknown code"
}

// UnknownObjectError is returned for an object id or name the registry
// does not know.
type UnknownObjectError struct {
	ID   ObjectID
	Name string
}

func (e *UnknownObjectError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("emop: unknown object %q", e.Name)
	}
	return fmt.Sprintf("emop: unknown object %s", e.ID)
}

// ValueError is returned when a value cannot be encoded (out of range, too
// many decimal places) or a payload does not decode to a valid value.
type ValueError struct {
	What string
	Msg  string
}

func (e *ValueError) Error() string { return fmt.Sprintf("emop: %s: %s", e.What, e.Msg) }
