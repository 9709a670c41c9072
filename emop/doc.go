// Package emop encodes and decodes EMOP, the EM-Lite Object Protocol spoken
// by Emlite prepayment meters. It is pure: bytes in, typed values out, no
// I/O (the meterconn package carries frames over TCP).
//
// # Frames
//
//	7e LL  DT DA DA DA  ST SA SA SA  CC  data...  CRC CRC
//
// 0x7E delimiter; LL the length from the length byte to the CRC inclusive
// (12 + data); destination and source as a device type and a big-endian
// 24-bit address; the control byte (sequence in bits 0..2, ack/nak code in
// bits 3..7); the data field; CRC-16/CCITT-FALSE over LL..data, big-endian.
// A frame is at most 256 bytes on the wire.
//
// One request per TCP connection: the client sends one frame, the meter
// answers one frame (echoing the sequence, ack/nak 0 when it succeeded) and
// the connection closes.
//
// # Data field
//
// The first byte is the record format. Default (0x01): object id (3 bytes),
// read/write flag, payload. Profile logs (0x03, 0x04): a u32le timestamp, and
// 80 bytes of records in the response. Each object's payload layout is in
// the comment beside it in objects.go; Type says how DecodeValue reads it.
//
// # Values
//
// Money is GBP × 100 000 in 32 bits (balance signed, other amounts
// unsigned) and converts exactly to and from decimal.Decimal: an amount with
// more than 5 decimal places or out of range is an error, never rounded.
// Timestamps are seconds since 2000-01-01T00:00:00 in the meter's clock
// convention; converting UTC instants to that convention is the caller's
// job (flows.MeterClockZone).
//
// # This project's own choices
//
// The reference does not give these; they are ours, used identically by
// this codec and by the simulator (package sim), and would have to be
// replaced by the vendor's values before talking to real meters:
//
//   - object ids 0xFE0001 daylight_savings_correction_flag, 0xFE0002
//     backlight, 0xFE0003 load_switch, 0xFE0004
//     prepay_no_debt_recovery_when_emergency_credit_flag, 0xFE0005
//     prepay_no_standing_charge_when_power_fail_flag, 0xFE0006 event_log,
//     0xFE0007 three_phase_hardware_configuration (meter_type u8: 0 ax, 1
//     cx; 3 reserved bytes);
//   - read_element_a/b are element_a/b (fffffc/fffff8), and the three-phase
//     totals are the channel ids 010800…100800 (the reference's hypothesis);
//   - record format 0x05 for the event log: request = format · event_log id ·
//     block index 0..9; response = format · index · 10 events of 8 bytes
//     (timestamp u32le, event id u16le, event set u16le), newest first, id 0
//     for an empty slot;
//   - record format 0x06 for three-phase interval requests and responses;
//     profile numbers 0 profile_0, 1 reset; the response layout (format ·
//     profile · block count · blocks of start u32le, interval minutes u8,
//     channel count u8, 3-byte channel ids, interval count u8, intervals
//     of status u16le and one u32le per channel; see ThreePhaseIntervals):
//     a response carries what fits in one frame from the window's start,
//     and the client asks again from the end of the last interval; demand
//     channels hold the interval's mean power, energy channels the
//     cumulative register at the interval's end;
//   - three-phase interval status bits, u16le: 0 valid_data, 1 power_fail,
//     2..4 phase_1..3_voltage_failure, 5 security_access, 6 md_reset,
//     7 time_update, 8 log_reset; 9..15 reserved (zero, refused otherwise);
//   - the three-phase hardware configuration's 3 reserved bytes are zero
//     (refused otherwise); its meter type decides the scaling of totals
//     and interval values: ax_whole_current counts Wh (W), ÷ 1 000 to
//     kWh (kW); cx_ct_operated counts 0.1 Wh (0.1 W), ÷ 10 000 — the
//     references' A.11 and A.12; an unknown type is not scaled at all;
//   - three-phase firmware is 2 bytes (an old comment of the reference),
//     shown as hex;
//   - profile log 2 record layout (see ProfileLog2Record);
//   - enum codes: BacklightSettings and LoadSwitchSettings in their slice
//     order; three-phase meter types 0 ax_whole_current, 1 cx_ct_operated;
//   - the clock's day of week is written with 0 = Sunday, as read from real
//     meters.
package emop
