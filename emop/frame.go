package emop

import (
	"encoding/binary"
	"io"
)

// Frame layout constants.
const (
	Delimiter = 0x7E
	// headerLen is length(1) + destination(4) + source(4) + control(1).
	headerLen = 10
	// overhead is what the length byte counts besides the data field:
	// header plus CRC(2).
	overhead = headerLen + 2
	// MinLength is the smallest valid length byte: a data field needs at
	// least its format byte.
	MinLength = overhead + 1
	// MaxLength is the largest length byte (it is one byte).
	MaxLength = 255
	// MaxFrameSize is the largest frame on the wire, delimiter included.
	MaxFrameSize = MaxLength + 1
	// MaxData is the largest data field.
	MaxData = MaxLength - overhead
)

// Frame is one EMOP frame. Data is the data field: format byte first.
type Frame struct {
	DestType byte
	DestAddr uint32 // 24 bits
	SrcType  byte
	SrcAddr  uint32 // 24 bits
	Control  byte
	Data     []byte
}

// Sequence returns the sequence number (control bits 0..2).
func (f *Frame) Sequence() uint8 { return f.Control & 0x07 }

// AckNak returns the ack/nak code (control bits 3..7); 0 is ok.
func (f *Frame) AckNak() uint8 { return f.Control >> 3 }

// Control builds a control byte from a sequence (0..7) and an ack/nak code.
func Control(seq, ackNak uint8) byte { return seq&0x07 | ackNak<<3 }

// Length returns the frame's length byte: 12 + len(Data).
func (f *Frame) Length() int { return overhead + len(f.Data) }

// AppendTo appends the encoded frame to dst. It returns a *LengthError if
// the data field is empty or longer than MaxData.
func (f *Frame) AppendTo(dst []byte) ([]byte, error) {
	if len(f.Data) == 0 || len(f.Data) > MaxData {
		return dst, &LengthError{What: "data field", Got: len(f.Data), Want: "1..243"}
	}
	start := len(dst)
	dst = append(dst, Delimiter, byte(f.Length()),
		f.DestType, byte(f.DestAddr>>16), byte(f.DestAddr>>8), byte(f.DestAddr),
		f.SrcType, byte(f.SrcAddr>>16), byte(f.SrcAddr>>8), byte(f.SrcAddr),
		f.Control)
	dst = append(dst, f.Data...)
	crc := CRC16(dst[start+1:])
	return binary.BigEndian.AppendUint16(dst, crc), nil
}

// DecodeFrame decodes the frame at the start of b and returns it with the
// number of bytes it used. Errors: ErrTruncated when b ends early,
// *DelimiterError, *LengthError for an impossible length byte, and
// *CRCError when the CRC does not match — in that case the frame is
// returned too, so that a caller can show what arrived. The returned Data
// is a copy; b may be reused.
func DecodeFrame(b []byte) (Frame, int, error) {
	if len(b) < 2 {
		if len(b) == 1 && b[0] != Delimiter {
			return Frame{}, 0, &DelimiterError{Got: b[0]}
		}
		return Frame{}, 0, ErrTruncated
	}
	if b[0] != Delimiter {
		return Frame{}, 0, &DelimiterError{Got: b[0]}
	}
	l := int(b[1])
	if l < MinLength {
		return Frame{}, 0, &LengthError{What: "frame", Got: l, Want: "13..255"}
	}
	if len(b) < l+1 {
		return Frame{}, 0, ErrTruncated
	}
	body := b[1 : l+1] // length byte .. CRC
	f := Frame{
		DestType: body[1],
		DestAddr: uint32(body[2])<<16 | uint32(body[3])<<8 | uint32(body[4]),
		SrcType:  body[5],
		SrcAddr:  uint32(body[6])<<16 | uint32(body[7])<<8 | uint32(body[8]),
		Control:  body[9],
		Data:     append([]byte(nil), body[headerLen:l-2]...),
	}
	got := binary.BigEndian.Uint16(body[l-2:])
	if want := CRC16(body[:l-2]); want != got {
		return f, l + 1, &CRCError{Want: want, Got: got}
	}
	return f, l + 1, nil
}

// FrameCRC returns the CRC carried by an encoded frame (its last two bytes).
func FrameCRC(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b[len(b)-2:])
}

// ReadFrame reads exactly one frame from r: the delimiter, the length
// byte, then the rest with io.ReadFull, so a frame split across TCP
// segments is reassembled and nothing past it is consumed. It returns the
// raw bytes with the frame (a *CRCError keeps both).
func ReadFrame(r io.Reader) (Frame, []byte, error) {
	var buf [MaxFrameSize]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return Frame{}, nil, err
	}
	if buf[0] != Delimiter {
		return Frame{}, nil, &DelimiterError{Got: buf[0]}
	}
	l := int(buf[1])
	if l < MinLength {
		return Frame{}, nil, &LengthError{What: "frame", Got: l, Want: "13..255"}
	}
	if _, err := io.ReadFull(r, buf[2:l+1]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, nil, err
	}
	raw := append([]byte(nil), buf[:l+1]...)
	f, _, err := DecodeFrame(raw)
	return f, raw, err
}
