package emop

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Record formats: the first byte of a data field.
const (
	FormatDefault      byte = 0x01 // object id (3) · r/w (1) · payload
	FormatProfileLog1  byte = 0x03 // u32le epoch · (response) 80 bytes
	FormatProfileLog2  byte = 0x04 // same as profile log 1
	FormatEventLog     byte = 0x05 // ours: object id (3) · index (1); response: index (1) · 10 × 8-byte events
	FormatThreePhaseIv byte = 0x06 // ours: profile (1) · start u32le · end u32le · ffffffff
)

// Read/write flag of a default-format data field.
const (
	RW_Read  byte = 0x00
	RW_Write byte = 0x01
)

// Record is a default-format data field.
type Record struct {
	Object  ObjectID
	Write   bool
	Payload []byte
}

// AppendTo appends the data field (format byte first) to dst.
func (r Record) AppendTo(dst []byte) []byte {
	id := r.Object.Bytes()
	rw := RW_Read
	if r.Write {
		rw = RW_Write
	}
	dst = append(dst, FormatDefault, id[0], id[1], id[2], rw)
	return append(dst, r.Payload...)
}

// ReadRequest returns the data field of a read of id.
func ReadRequest(id ObjectID) []byte { return Record{Object: id}.AppendTo(nil) }

// WriteRequest returns the data field of a write of payload to id.
func WriteRequest(id ObjectID, payload []byte) []byte {
	return Record{Object: id, Write: true, Payload: payload}.AppendTo(nil)
}

// ParseRecord decodes a default-format data field. The payload is a copy.
func ParseRecord(data []byte) (Record, error) {
	if len(data) < 5 {
		return Record{}, &LengthError{What: "default data field", Got: len(data), Want: "at least 5"}
	}
	if data[0] != FormatDefault {
		return Record{}, &ValueError{What: "data field", Msg: "format is not default (0x01)"}
	}
	if data[4] > RW_Write {
		return Record{}, &ValueError{What: "data field", Msg: "read/write flag is neither 0 nor 1"}
	}
	return Record{
		Object:  ObjectID(data[1])<<16 | ObjectID(data[2])<<8 | ObjectID(data[3]),
		Write:   data[4] == RW_Write,
		Payload: append([]byte(nil), data[5:]...),
	}, nil
}

// MaxEventLogIndex is the oldest block of the event log (0 = newest).
const MaxEventLogIndex = 9

// EventsPerBlock is the number of events in one event-log response.
const EventsPerBlock = 10

// eventSize is the size of one event in our event-log response layout:
// timestamp u32le (epoch) · event id u16le · event set u16le.
const eventSize = 8

// EventLogRequest returns the data field asking for event-log block index
// (0 = the newest ten events).
func EventLogRequest(index uint8) ([]byte, error) {
	if index > MaxEventLogIndex {
		return nil, &ValueError{What: "event log index", Msg: "must be 0..9"}
	}
	id := ObjEventLog.Bytes()
	return []byte{FormatEventLog, id[0], id[1], id[2], index}, nil
}

// ParseEventLogRequest returns the block index of an event-log request.
func ParseEventLogRequest(data []byte) (uint8, error) {
	if len(data) != 5 || data[0] != FormatEventLog {
		return 0, &LengthError{What: "event log request", Got: len(data), Want: "5 (format 0x05)"}
	}
	if ObjectID(data[1])<<16|ObjectID(data[2])<<8|ObjectID(data[3]) != ObjEventLog {
		return 0, &ValueError{What: "event log request", Msg: "object is not event_log"}
	}
	if data[4] > MaxEventLogIndex {
		return 0, &ValueError{What: "event log index", Msg: "must be 0..9"}
	}
	return data[4], nil
}

// Event is one meter event. EventSet counts events of that type.
type Event struct {
	Timestamp time.Time `json:"timestamp"`
	EventID   uint16    `json:"event_id"`
	EventSet  uint16    `json:"event_set"`
}

// EventLogResponse returns the data field answering block index with up to
// ten events (newest first); missing slots are zero (id 0 = no event).
func EventLogResponse(index uint8, events []Event) ([]byte, error) {
	if len(events) > EventsPerBlock {
		return nil, &LengthError{What: "event log block", Got: len(events), Want: "at most 10"}
	}
	out := make([]byte, 2, 2+EventsPerBlock*eventSize)
	out[0], out[1] = FormatEventLog, index
	for i := range EventsPerBlock {
		var e Event
		if i < len(events) {
			e = events[i]
		}
		var ts []byte
		if e.EventID == 0 {
			ts = []byte{0, 0, 0, 0}
		} else {
			var err error
			if ts, err = EncodeEpoch(e.Timestamp); err != nil {
				return nil, err
			}
		}
		out = append(out, ts...)
		out = binary.LittleEndian.AppendUint16(out, e.EventID)
		out = binary.LittleEndian.AppendUint16(out, e.EventSet)
	}
	return out, nil
}

// ParseEventLogResponse decodes an event-log response: its block index and
// events, newest first, with invalid id-0 slots dropped.
func ParseEventLogResponse(data []byte) (uint8, []Event, error) {
	if len(data) != 2+EventsPerBlock*eventSize || data[0] != FormatEventLog {
		return 0, nil, &LengthError{What: "event log response", Got: len(data), Want: "82 (format 0x05)"}
	}
	var evs []Event
	for i := range EventsPerBlock {
		b := data[2+i*eventSize:]
		id := binary.LittleEndian.Uint16(b[4:])
		if id == 0 {
			continue
		}
		evs = append(evs, Event{
			Timestamp: epochTime(binary.LittleEndian.Uint32(b)),
			EventID:   id,
			EventSet:  binary.LittleEndian.Uint16(b[6:]),
		})
	}
	return data[1], evs, nil
}

// ProfileLogRequest returns the data field asking profile log format
// (FormatProfileLog1 or 2) for records from t (a half-hour boundary).
func ProfileLogRequest(format byte, t time.Time) ([]byte, error) {
	if format != FormatProfileLog1 && format != FormatProfileLog2 {
		return nil, &ValueError{What: "profile log format", Msg: "must be 3 or 4"}
	}
	ts, err := EncodeEpoch(t)
	if err != nil {
		return nil, err
	}
	return append([]byte{format}, ts...), nil
}

// ParseProfileLogRequest returns the format and start time of a profile-log
// request.
func ParseProfileLogRequest(data []byte) (byte, time.Time, error) {
	if len(data) != 5 || (data[0] != FormatProfileLog1 && data[0] != FormatProfileLog2) {
		return 0, time.Time{}, &LengthError{What: "profile log request", Got: len(data), Want: "5 (format 3 or 4)"}
	}
	return data[0], epochTime(binary.LittleEndian.Uint32(data[1:])), nil
}

// profilePayload is the size of a profile-log response after its timestamp.
const profilePayload = 80

// Profile-log record status bits, read as u16le (A.9).
const (
	StatusValidData = 0x8000
	StatusReset     = 0x0001
	StatusPowerFail = 0x4000
)

// ProfileLog1Record is a half-hourly snapshot of cumulative import (Wh).
type ProfileLog1Record struct {
	Timestamp time.Time `json:"timestamp"`
	Status    uint16    `json:"status"`
	ImportA   uint32    `json:"import_a"`
	ImportB   uint32    `json:"import_b"`
}

const pl1Size = 14 // ts u32le · status u16le · import_a u32le · import_b u32le

// ProfileLog1PerResponse is how many records one response carries, as seen
// on real meters (five; the remaining 10 bytes are not decoded).
const ProfileLog1PerResponse = 5

// ProfileLog1Response encodes a profile-log-1 response for start with up
// to five records.
func ProfileLog1Response(start time.Time, recs []ProfileLog1Record) ([]byte, error) {
	if len(recs) > ProfileLog1PerResponse {
		return nil, &LengthError{What: "profile log 1 records", Got: len(recs), Want: "at most 5"}
	}
	ts, err := EncodeEpoch(start)
	if err != nil {
		return nil, err
	}
	out := append([]byte{FormatProfileLog1}, ts...)
	body := make([]byte, profilePayload)
	for i, r := range recs {
		b := body[i*pl1Size:]
		rts, err := EncodeEpoch(r.Timestamp)
		if err != nil {
			return nil, err
		}
		copy(b, rts)
		binary.LittleEndian.PutUint16(b[4:], r.Status)
		binary.LittleEndian.PutUint32(b[6:], r.ImportA)
		binary.LittleEndian.PutUint32(b[10:], r.ImportB)
	}
	return append(out, body...), nil
}

// ParseProfileLog1Response decodes the records of a profile-log-1 response;
// empty slots (timestamp 0) are dropped.
func ParseProfileLog1Response(data []byte) (time.Time, []ProfileLog1Record, error) {
	if len(data) != 5+profilePayload || data[0] != FormatProfileLog1 {
		return time.Time{}, nil, &LengthError{What: "profile log 1 response", Got: len(data), Want: "85 (format 3)"}
	}
	var recs []ProfileLog1Record
	for i := range ProfileLog1PerResponse {
		b := data[5+i*pl1Size:]
		raw := binary.LittleEndian.Uint32(b)
		if raw == 0 {
			continue
		}
		recs = append(recs, ProfileLog1Record{
			Timestamp: epochTime(raw),
			Status:    binary.LittleEndian.Uint16(b[4:]),
			ImportA:   binary.LittleEndian.Uint32(b[6:]),
			ImportB:   binary.LittleEndian.Uint32(b[10:]),
		})
	}
	return epochTime(binary.LittleEndian.Uint32(data[1:])), recs, nil
}

// ProfileLog2Record is a half-hourly snapshot of export and reactive
// registers and voltage. The B fields are present on twin-element meters.
// Layout (ours, A.9 does not give it): ts u32le · status u16le ·
// active_export_a u32le · reactive_import_a u32le · reactive_export_a u32le
// · voltage u16le tenths · [twin: active_export_b · reactive_import_b ·
// reactive_export_b, u32le each] · 2 reserved bytes. 22 bytes single, 34
// twin; 3 single or 2 twin records per response.
type ProfileLog2Record struct {
	Timestamp       time.Time `json:"timestamp"`
	Status          uint16    `json:"status"`
	ActiveExportA   uint32    `json:"active_export_a"`
	ReactiveImportA uint32    `json:"reactive_import_a"`
	ReactiveExportA uint32    `json:"reactive_export_a"`
	VoltageTenths   uint16    `json:"voltage_tenths"`
	ActiveExportB   uint32    `json:"active_export_b,omitempty"`
	ReactiveImportB uint32    `json:"reactive_import_b,omitempty"`
	ReactiveExportB uint32    `json:"reactive_export_b,omitempty"`
}

// ProfileLog2Layout returns the record size and count for a meter.
func ProfileLog2Layout(twin bool) (size, count int) {
	if twin {
		return 34, 2
	}
	return 22, 3
}

// ProfileLog2Response encodes a profile-log-2 response.
func ProfileLog2Response(start time.Time, twin bool, recs []ProfileLog2Record) ([]byte, error) {
	size, count := ProfileLog2Layout(twin)
	if len(recs) > count {
		return nil, &LengthError{What: "profile log 2 records", Got: len(recs), Want: fmt.Sprintf("at most %d", count)}
	}
	ts, err := EncodeEpoch(start)
	if err != nil {
		return nil, err
	}
	out := append([]byte{FormatProfileLog2}, ts...)
	body := make([]byte, profilePayload)
	for i, r := range recs {
		b := body[i*size:]
		rts, err := EncodeEpoch(r.Timestamp)
		if err != nil {
			return nil, err
		}
		copy(b, rts)
		binary.LittleEndian.PutUint16(b[4:], r.Status)
		binary.LittleEndian.PutUint32(b[6:], r.ActiveExportA)
		binary.LittleEndian.PutUint32(b[10:], r.ReactiveImportA)
		binary.LittleEndian.PutUint32(b[14:], r.ReactiveExportA)
		binary.LittleEndian.PutUint16(b[18:], r.VoltageTenths)
		if twin {
			binary.LittleEndian.PutUint32(b[20:], r.ActiveExportB)
			binary.LittleEndian.PutUint32(b[24:], r.ReactiveImportB)
			binary.LittleEndian.PutUint32(b[28:], r.ReactiveExportB)
		}
	}
	return append(out, body...), nil
}

// ParseProfileLog2Response decodes a profile-log-2 response.
func ParseProfileLog2Response(data []byte, twin bool) (time.Time, []ProfileLog2Record, error) {
	if len(data) != 5+profilePayload || data[0] != FormatProfileLog2 {
		return time.Time{}, nil, &LengthError{What: "profile log 2 response", Got: len(data), Want: "85 (format 4)"}
	}
	size, count := ProfileLog2Layout(twin)
	var recs []ProfileLog2Record
	for i := range count {
		b := data[5+i*size:]
		raw := binary.LittleEndian.Uint32(b)
		if raw == 0 {
			continue
		}
		r := ProfileLog2Record{
			Timestamp:       epochTime(raw),
			Status:          binary.LittleEndian.Uint16(b[4:]),
			ActiveExportA:   binary.LittleEndian.Uint32(b[6:]),
			ReactiveImportA: binary.LittleEndian.Uint32(b[10:]),
			ReactiveExportA: binary.LittleEndian.Uint32(b[14:]),
			VoltageTenths:   binary.LittleEndian.Uint16(b[18:]),
		}
		if twin {
			r.ActiveExportB = binary.LittleEndian.Uint32(b[20:])
			r.ReactiveImportB = binary.LittleEndian.Uint32(b[24:])
			r.ReactiveExportB = binary.LittleEndian.Uint32(b[28:])
		}
		recs = append(recs, r)
	}
	return epochTime(binary.LittleEndian.Uint32(data[1:])), recs, nil
}

// Three-phase interval profile numbers (ours: A.8.3 gives names only).
const (
	ProfileZero  byte = 0
	ProfileReset byte = 1
)

// ThreePhaseIntervalsRequest returns the data field asking a three-phase
// meter for interval data between start and end (at most 4 hours a frame).
func ThreePhaseIntervalsRequest(profile byte, start, end time.Time) ([]byte, error) {
	if !end.After(start) || end.Sub(start) > 4*time.Hour {
		return nil, &ValueError{What: "three-phase interval window", Msg: "end must be after start, at most 4 hours"}
	}
	s, err := EncodeEpoch(start)
	if err != nil {
		return nil, err
	}
	e, err := EncodeEpoch(end)
	if err != nil {
		return nil, err
	}
	out := append([]byte{FormatThreePhaseIv, profile}, s...)
	out = append(out, e...)
	return append(out, 0xFF, 0xFF, 0xFF, 0xFF), nil
}
