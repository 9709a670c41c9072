package emop

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Epoch is the EMOP epoch: timestamps count seconds from here (UTC).
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// moneyScale is GBP × 100 000: meters keep 5 decimal places.
var moneyScale = decimal.New(1, 5)

func need(what string, p []byte, n int) error {
	if len(p) != n {
		return &LengthError{What: what, Got: len(p), Want: fmt.Sprint(n)}
	}
	return nil
}

// DecodeBalance decodes a prepay balance: s32le GBP × 100 000 (negative in
// debt).
func DecodeBalance(p []byte) (decimal.Decimal, error) {
	if err := need("prepay balance", p, 4); err != nil {
		return decimal.Decimal{}, err
	}
	return decimal.New(int64(int32(binary.LittleEndian.Uint32(p))), -5), nil
}

// EncodeBalance encodes a balance as s32le GBP × 100 000.
func EncodeBalance(d decimal.Decimal) ([]byte, error) {
	raw, err := scaled("balance", d, math.MinInt32, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	return binary.LittleEndian.AppendUint32(nil, uint32(int32(raw))), nil
}

// DecodeMoney decodes an amount: u32le GBP × 100 000.
func DecodeMoney(p []byte) (decimal.Decimal, error) {
	if err := need("amount", p, 4); err != nil {
		return decimal.Decimal{}, err
	}
	return decimal.New(int64(binary.LittleEndian.Uint32(p)), -5), nil
}

// EncodeMoney encodes an amount as u32le GBP × 100 000. Negative amounts,
// amounts with more than 5 decimal places and amounts beyond the u32 range
// are errors (never rounded).
func EncodeMoney(d decimal.Decimal) ([]byte, error) {
	raw, err := scaled("amount", d, 0, math.MaxUint32)
	if err != nil {
		return nil, err
	}
	return binary.LittleEndian.AppendUint32(nil, uint32(raw)), nil
}

func scaled(what string, d decimal.Decimal, lo, hi int64) (int64, error) {
	s := d.Mul(moneyScale)
	if !s.Equal(s.Truncate(0)) {
		return 0, &ValueError{What: what, Msg: d.String() + " has more than 5 decimal places"}
	}
	if s.LessThan(decimal.NewFromInt(lo)) || s.GreaterThan(decimal.NewFromInt(hi)) {
		return 0, &ValueError{What: what, Msg: d.String() + " is outside the meter's range"}
	}
	return s.IntPart(), nil
}

func epochTime(raw uint32) time.Time { return Epoch.Add(time.Duration(raw) * time.Second) }

// DecodeEpoch decodes a u32le count of seconds since the EMOP epoch.
func DecodeEpoch(p []byte) (time.Time, error) {
	if err := need("timestamp", p, 4); err != nil {
		return time.Time{}, err
	}
	return epochTime(binary.LittleEndian.Uint32(p)), nil
}

// EncodeEpoch encodes t (its wall-clock fields read as UTC, as the
// caller converted it to the meter's convention) as seconds since the EMOP
// epoch. Times before 2000 or past 2136 are errors.
func EncodeEpoch(t time.Time) ([]byte, error) {
	s := t.Sub(Epoch)
	if s < 0 || s/time.Second > math.MaxUint32 {
		return nil, &ValueError{What: "timestamp", Msg: t.Format(time.RFC3339) + " is outside the EMOP epoch range"}
	}
	return binary.LittleEndian.AppendUint32(nil, uint32(s/time.Second)), nil
}

// DecodeClock decodes the 7-byte clock record: year − 2000, month, day,
// hour, minute, second, day of week (0 = Sunday, as real meters send). The
// fields are validated; the day of week is not cross-checked (meters are
// not trusted to keep it right).
func DecodeClock(p []byte) (time.Time, error) {
	if err := need("clock record", p, 7); err != nil {
		return time.Time{}, err
	}
	y, mo, d, h, mi, s, dow := int(p[0])+2000, int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5]), p[6]
	if mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || dow > 6 {
		return time.Time{}, &ValueError{What: "clock record", Msg: fmt.Sprintf("% x is not a valid date and time", p)}
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC)
	if t.Day() != d {
		return time.Time{}, &ValueError{What: "clock record", Msg: fmt.Sprintf("day %d does not exist in %d-%02d", d, y, mo)}
	}
	return t, nil
}

// EncodeClock encodes t's wall-clock fields (UTC) as the 7-byte clock
// record, day of week with 0 = Sunday.
func EncodeClock(t time.Time) ([]byte, error) {
	t = t.UTC()
	if t.Year() < 2000 || t.Year() > 2255 {
		return nil, &ValueError{What: "clock", Msg: "year outside 2000..2255"}
	}
	return []byte{byte(t.Year() - 2000), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), byte(t.Weekday())}, nil
}

// Signal is the CSQ byte: signal quality 0..31 and the network operator.
type Signal struct {
	CSQ             int `json:"csq"`
	NetworkOperator int `json:"network_operator"`
}

// DecodeCSQ decodes the CSQ / network-operator byte.
func DecodeCSQ(p []byte) (Signal, error) {
	if err := need("csq", p, 1); err != nil {
		return Signal{}, err
	}
	return Signal{CSQ: int(p[0] & 0x1F), NetworkOperator: int(p[0] >> 5)}, nil
}

// EncodeCSQ encodes a Signal.
func EncodeCSQ(s Signal) ([]byte, error) {
	if s.CSQ < 0 || s.CSQ > 31 || s.NetworkOperator < 0 || s.NetworkOperator > 7 {
		return nil, &ValueError{What: "csq", Msg: "csq must be 0..31 and operator 0..7"}
	}
	return []byte{byte(s.NetworkOperator<<5 | s.CSQ)}, nil
}

// DecodeVoltage decodes u16le tenths of a volt into volts (238.6).
func DecodeVoltage(p []byte) (decimal.Decimal, error) {
	if err := need("voltage", p, 2); err != nil {
		return decimal.Decimal{}, err
	}
	return decimal.New(int64(binary.LittleEndian.Uint16(p)), -1), nil
}

// EncodeVoltage encodes volts (one decimal place) as u16le tenths.
func EncodeVoltage(v decimal.Decimal) ([]byte, error) {
	t := v.Shift(1)
	if !t.Equal(t.Truncate(0)) || t.IsNegative() || t.GreaterThan(decimal.NewFromInt(math.MaxUint16)) {
		return nil, &ValueError{What: "voltage", Msg: v.String() + " is not 0..6553.5 in tenths"}
	}
	return binary.LittleEndian.AppendUint16(nil, uint16(t.IntPart())), nil
}

// Reading is an element register read, in Wh (VArh for reactive).
type Reading struct {
	ImportActive   uint32 `json:"import_active"`
	ExportActive   uint32 `json:"export_active"`
	ImportReactive uint32 `json:"import_reactive"`
	ExportReactive uint32 `json:"export_reactive"`
}

// DecodeReading decodes a 16-byte element read.
func DecodeReading(p []byte) (Reading, error) {
	if err := need("element read", p, 16); err != nil {
		return Reading{}, err
	}
	le := binary.LittleEndian
	return Reading{le.Uint32(p), le.Uint32(p[4:]), le.Uint32(p[8:]), le.Uint32(p[12:])}, nil
}

// Encode encodes r as 4 × u32le.
func (r Reading) Encode() []byte {
	out := make([]byte, 0, 16)
	for _, v := range []uint32{r.ImportActive, r.ExportActive, r.ImportReactive, r.ExportReactive} {
		out = binary.LittleEndian.AppendUint32(out, v)
	}
	return out
}

// DecodeString decodes an ASCII field, trimming spaces and NULs (serial,
// hardware). Non-printable bytes are an error.
func DecodeString(p []byte) (string, error) {
	s := strings.Trim(string(p), " \x00")
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7E {
			if c == 0 {
				continue
			}
			return "", &ValueError{What: "string", Msg: fmt.Sprintf("byte 0x%02x is not printable ASCII", c)}
		}
	}
	return strings.ReplaceAll(s, "\x00", ""), nil
}

// EncodeString pads s with spaces to width (serials are 16 bytes).
func EncodeString(s string, width int) []byte {
	out := []byte(s)
	for len(out) < width {
		out = append(out, ' ')
	}
	return out
}

// Hardware names in the registry (meter_registry.hardware).
const (
	HardwareTwin              = "C1.w"
	HardwareSingleB           = "B1.w"
	HardwareSingleA           = "EMA1.w"
	HardwareSinglePhaseUnknwn = "SINGLE_PHASE_UNKNOWN"
	HardwareThreePhaseAX      = "P1.ax"
	HardwareThreePhaseCX      = "P1.cx"
	HardwareThreePhaseUnknown = "THREE_PHASE_UNKNOWN"
)

// RegistryHardware maps the hardware string a meter reports to the
// registry's name. An empty string means a three-phase meter: pass its
// configuration's meter type (ThreePhaseAX/CX) as threePhaseType, or -1
// when unknown.
func RegistryHardware(reported string, threePhaseType int) string {
	switch reported {
	case "6C", "6Cw":
		return HardwareTwin
	case "6Bw":
		return HardwareSingleB
	case "3Aw":
		return HardwareSingleA
	case "":
		switch threePhaseType {
		case ThreePhaseAX:
			return HardwareThreePhaseAX
		case ThreePhaseCX:
			return HardwareThreePhaseCX
		}
		return HardwareThreePhaseUnknown
	}
	return HardwareSinglePhaseUnknwn
}

// ReportedHardware is the inverse of RegistryHardware for single-phase
// meters (what a simulated meter answers).
func ReportedHardware(registry string) string {
	switch registry {
	case HardwareTwin:
		return "6Cw"
	case HardwareSingleB:
		return "6Bw"
	case HardwareSingleA:
		return "3Aw"
	}
	return ""
}

// IsThreePhase reports whether a registry hardware name is three-phase.
func IsThreePhase(hw string) bool {
	switch hw {
	case HardwareThreePhaseAX, HardwareThreePhaseCX, "AX", "CX", HardwareThreePhaseUnknown:
		return true
	}
	return false
}

// IsTwinElement reports whether a registry hardware name has elements A and B.
func IsTwinElement(hw string) bool { return hw == HardwareTwin }

// Three-phase meter types (ours: A.8.3 gives names only).
const (
	ThreePhaseAX = 0 // ax_whole_current
	ThreePhaseCX = 1 // cx_ct_operated
)

// FormatFirmware formats a firmware payload: four ASCII digits "3028" as
// "3_02_8" (single phase); anything else as lowercase hex (three phase).
func FormatFirmware(p []byte) string {
	if len(p) == 4 {
		ok := true
		for _, c := range p {
			ok = ok && c >= '0' && c <= '9'
		}
		if ok {
			return fmt.Sprintf("%c_%c%c_%c", p[0], p[1], p[2], p[3])
		}
	}
	return hex.EncodeToString(p)
}

// ThresholdMask says which of rates 1..8 have thresholds (bit n-1 = rate n).
type ThresholdMask [8]bool

// DecodeThresholdMask decodes the 1-byte mask.
func DecodeThresholdMask(p []byte) (ThresholdMask, error) {
	var m ThresholdMask
	if err := need("threshold mask", p, 1); err != nil {
		return m, err
	}
	for i := range m {
		m[i] = p[0]&(1<<i) != 0
	}
	return m, nil
}

// Encode encodes the mask as one byte.
func (m ThresholdMask) Encode() []byte {
	var b byte
	for i, on := range m {
		if on {
			b |= 1 << i
		}
	}
	return []byte{b}
}

// Map returns the mask as {"rate1": 0|1, ...}, the reference's JSON shape.
func (m ThresholdMask) Map() map[string]int {
	out := map[string]int{}
	for i, on := range m {
		v := 0
		if on {
			v = 1
		}
		out[fmt.Sprintf("rate%d", i+1)] = v
	}
	return out
}

// ThresholdValues are the seven rate thresholds th1..th7.
type ThresholdValues [7]uint16

// DecodeThresholdValues decodes 7 × u16le.
func DecodeThresholdValues(p []byte) (ThresholdValues, error) {
	var v ThresholdValues
	if err := need("threshold values", p, 14); err != nil {
		return v, err
	}
	for i := range v {
		v[i] = binary.LittleEndian.Uint16(p[2*i:])
	}
	return v, nil
}

// Encode encodes the values as 7 × u16le.
func (v ThresholdValues) Encode() []byte {
	out := make([]byte, 0, 14)
	for _, x := range v {
		out = binary.LittleEndian.AppendUint16(out, x)
	}
	return out
}

// Map returns the values as {"th1": n, ...}.
func (v ThresholdValues) Map() map[string]int {
	out := map[string]int{}
	for i, x := range v {
		out[fmt.Sprintf("th%d", i+1)] = int(x)
	}
	return out
}

// TokenLen is the number of digits of a top-up token.
const TokenLen = 20

// EncodeToken validates a 20-digit token and returns its payload (the
// ASCII digits).
func EncodeToken(tok string) ([]byte, error) {
	if len(tok) != TokenLen {
		return nil, &ValueError{What: "token", Msg: fmt.Sprintf("has %d characters, want 20 digits", len(tok))}
	}
	for _, c := range tok {
		if c < '0' || c > '9' {
			return nil, &ValueError{What: "token", Msg: "must be 20 digits"}
		}
	}
	return []byte(tok), nil
}

// DecodeToken decodes a token payload.
func DecodeToken(p []byte) (string, error) {
	if _, err := EncodeToken(string(p)); err != nil {
		return "", err
	}
	return string(p), nil
}

// RedactToken keeps the last four digits of a token for logs.
func RedactToken(tok string) string {
	if len(tok) <= 4 {
		return "****"
	}
	return strings.Repeat("*", len(tok)-4) + tok[len(tok)-4:]
}

// DecodeU8, DecodeU16 and DecodeU32 decode little-endian integers.
func DecodeU8(p []byte) (uint8, error) {
	if err := need("u8", p, 1); err != nil {
		return 0, err
	}
	return p[0], nil
}

// DecodeU16 decodes a u16le.
func DecodeU16(p []byte) (uint16, error) {
	if err := need("u16", p, 2); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

// DecodeU32 decodes a u32le.
func DecodeU32(p []byte) (uint32, error) {
	if err := need("u32", p, 4); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// Transaction is a monetary-info transaction record.
type Transaction struct {
	Raw          [8]byte         `json:"-"`
	PaymentTime  time.Time       `json:"payment_time"`
	PaymentValue decimal.Decimal `json:"payment_value"`
}

// DecodeTransaction decodes 8 undecoded bytes, payment_time u32le,
// payment_value s32le GBP × 100 000.
func DecodeTransaction(p []byte) (Transaction, error) {
	var t Transaction
	if err := need("transaction details", p, 16); err != nil {
		return t, err
	}
	copy(t.Raw[:], p)
	t.PaymentTime = epochTime(binary.LittleEndian.Uint32(p[8:]))
	t.PaymentValue = decimal.New(int64(int32(binary.LittleEndian.Uint32(p[12:]))), -5)
	return t, nil
}

// Encode encodes t.
func (t Transaction) Encode() ([]byte, error) {
	out := append([]byte(nil), t.Raw[:]...)
	ts, err := EncodeEpoch(t.PaymentTime)
	if err != nil {
		return nil, err
	}
	v, err := EncodeBalance(t.PaymentValue)
	if err != nil {
		return nil, err
	}
	return append(append(out, ts...), v...), nil
}

// Backlight settings (codes ours: A.8.3 gives names only).
var BacklightSettings = []string{
	"normal_sp_or_always_off_3p", // 0
	"always_on_sp",               // 1
	"always_off_sp",              // 2
	"always_on_3p",               // 3
	"always_off_3p",              // 4
	"30_seconds_turn_off_3p",     // 5
}

// LoadSwitchSettings are the load-switch settings (codes ours).
var LoadSwitchSettings = []string{
	"normal_button_always",  // 0
	"no_button_prepay_mode", // 1
	"no_button_credit_mode", // 2
	"never_button_required", // 3
}

// SettingName returns the name of code in settings, or "" when out of range.
func SettingName(settings []string, code uint8) string {
	if int(code) < len(settings) {
		return settings[code]
	}
	return ""
}

// SettingCode returns the code of name in settings. "normal_sp" is
// accepted for code 0 of the backlight, as the reference CLI names it.
func SettingCode(settings []string, name string) (uint8, bool) {
	if name == "normal_sp" {
		name = settings[0]
	}
	for i, s := range settings {
		if s == name {
			return uint8(i), true
		}
	}
	return 0, false
}
