package emop

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ObjectID is a 3-byte EMOP object id (held in the low 24 bits).
type ObjectID uint32

// String formats the id as six lowercase hex digits.
func (id ObjectID) String() string { return fmt.Sprintf("%06x", uint32(id)) }

// Bytes returns the id big-endian, as it appears in a data field.
func (id ObjectID) Bytes() [3]byte { return [3]byte{byte(id >> 16), byte(id >> 8), byte(id)} }

// Type is the payload type of an object: how its bytes map to a value.
type Type int

// Payload types. Each object's comment in the table below gives its layout.
const (
	TypeRaw              Type = iota // bytes, shown as hex
	TypeBalance                      // s32le, GBP × 100 000
	TypeMoney                        // u32le, GBP × 100 000
	TypeEpoch                        // u32le seconds since 2000-01-01T00:00:00Z
	TypeClock                        // 7 bytes: year-2000, month, day, hour, minute, second, day of week (0 = Sunday)
	TypeCSQ                          // 1 byte: operator (bits 5..7), CSQ 0..31 (bits 0..4)
	TypeVoltage                      // u16le tenths of a volt
	TypeU16                          // u16le
	TypeU32                          // u32le
	TypeU8                           // one byte (flags, indexes, enums)
	TypeElement                      // 4 × u32le Wh: import active, export active, import reactive, export reactive
	TypeASCII                        // ASCII, space/NUL padded, trimmed
	TypeFirmware                     // 4 ASCII digits → "d_dd_d"; otherwise hex
	TypeThresholdMask                // 1 byte, bit n-1 = rate n
	TypeThresholdValues              // 7 × u16le th1..th7
	TypeToken                        // 20 ASCII digits
	TypeTransaction                  // 8 undecoded bytes, payment_time u32le (epoch), payment_value s32le (GBP × 1e5)
	TypeThreePhaseConfig             // project layout: meter_type u8 (0 ax_whole_current, 1 cx_ct_operated), 3 reserved bytes
)

// Object describes one object id.
type Object struct {
	ID       ObjectID
	Name     string
	Type     Type
	Size     int  // payload size in bytes; 0 when variable
	Writable bool // accepts writes (others answer NAK 6)
	// Ours marks ids whose numeric value the reference does not give: the
	// value is this project's choice, shared by codec and simulator.
	Ours bool
}

// Objects known to the reference (emop-protocol.md A.8) and our own ids
// for names whose values it does not know (see doc.go). The comment on each
// gives its payload.
var objects = []Object{
	{ID: 0x800800, Name: "time", Type: TypeClock, Size: 7, Writable: true},               // 7-byte clock record
	{ID: 0x600100, Name: "serial", Type: TypeASCII},                                      // ASCII, space padded
	{ID: 0x608000, Name: "hardware_version", Type: TypeASCII},                            // ASCII, NUL padded
	{ID: 0x000201, Name: "firmware_version", Type: TypeFirmware},                         // 4 ASCII (single phase)
	{ID: 0xFFC802, Name: "prepay_balance", Type: TypeBalance, Size: 4},                   // s32le GBP×1e5
	{ID: 0xFFFF0D, Name: "prepay_enabled_flag", Type: TypeU8, Size: 1, Writable: true},   // 1 prepay, 0 credit
	{ID: 0xFFFFFC, Name: "element_a", Type: TypeElement, Size: 16},                       // 4 × u32le Wh
	{ID: 0xFFFFF8, Name: "element_b", Type: TypeElement, Size: 16},                       // 4 × u32le Wh
	{ID: 0xFFFD1D, Name: "csq_net_op", Type: TypeCSQ, Size: 1},                           // operator<<5 | csq
	{ID: 0xFFC803, Name: "prepay_token_send", Type: TypeToken, Size: 20, Writable: true}, // 20 ASCII digits
	{ID: 0x0C0700, Name: "instantaneous_voltage", Type: TypeVoltage, Size: 2},            // u16le tenths of a volt
	{ID: 0x0B0700, Name: "instantaneous_current", Type: TypeU16, Size: 2},                // u16le tenths of an amp
	{ID: 0x010700, Name: "instantaneous_active_power", Type: TypeU16, Size: 2},           // u16le W
	{ID: 0x030700, Name: "instantaneous_reactive_power", Type: TypeU16, Size: 2},
	{ID: 0x0D0700, Name: "instantaneous_power_factor", Type: TypeU16, Size: 2}, // u16le hundredths
	{ID: 0x0E0700, Name: "instantaneous_frequency", Type: TypeU16, Size: 2},    // u16le tenths of a Hz
	{ID: 0x0C1800, Name: "average_voltage", Type: TypeU16, Size: 2},
	{ID: 0x0B1800, Name: "average_current", Type: TypeU16, Size: 2},
	{ID: 0x0E1800, Name: "average_frequency", Type: TypeU16, Size: 2},
	{ID: 0x010800, Name: "total_active_import_energy", Type: TypeU32, Size: 4},        // u32le Wh
	{ID: 0x020800, Name: "total_active_export_energy", Type: TypeU32, Size: 4},        // u32le Wh
	{ID: 0x030800, Name: "three_phase_total_reactive_import", Type: TypeU32, Size: 4}, // A.8.2 hypothesis
	{ID: 0x040800, Name: "three_phase_total_reactive_export", Type: TypeU32, Size: 4},
	{ID: 0x090800, Name: "three_phase_total_apparent_import", Type: TypeU32, Size: 4},
	{ID: 0x100800, Name: "three_phase_total_apparent_export", Type: TypeU32, Size: 4},
	{ID: 0x150700, Name: "element_a_instantaneous_active_power_import", Type: TypeU16, Size: 2},
	{ID: 0x290700, Name: "element_b_instantaneous_active_power_import", Type: TypeU16, Size: 2},
	{ID: 0xD7FF10, Name: "three_phase_serial", Type: TypeASCII},
	{ID: 0xD70A0C, Name: "three_phase_initiate_read", Type: TypeRaw},
	{ID: 0xD7060A, Name: "three_phase_read", Type: TypeRaw},
	{ID: 0x200700, Name: "three_phase_instantaneous_voltage_l1", Type: TypeVoltage, Size: 2},
	{ID: 0x340700, Name: "three_phase_instantaneous_voltage_l2", Type: TypeVoltage, Size: 2},
	{ID: 0x480700, Name: "three_phase_instantaneous_voltage_l3", Type: TypeVoltage, Size: 2},
	{ID: 0xFFC83E, Name: "monetary_info_transaction_count", Type: TypeU16, Size: 2}, // number of top-ups − 1
	{ID: 0xFFC840, Name: "monetary_info_transaction_details", Type: TypeTransaction, Size: 16},
	{ID: 0x0D0000, Name: "tariff_time_switch_element_a_or_single", Type: TypeRaw, Size: 80, Writable: true},
	{ID: 0x0D00FF, Name: "tariff_time_switch_element_b", Type: TypeRaw, Size: 80, Writable: true},
	{ID: 0xFFFF4E, Name: "tariff_active_tou_flag", Type: TypeU8, Size: 1},
	{ID: 0xFFFF22, Name: "tariff_active_standing_charge", Type: TypeMoney, Size: 4}, // GBP×1e5 per day
	{ID: 0xFFFF20, Name: "tariff_active_threshold_mask", Type: TypeThresholdMask, Size: 1},
	{ID: 0xFFFF1E, Name: "tariff_active_threshold_values", Type: TypeThresholdValues, Size: 14},
	{ID: 0xFFC964, Name: "tariff_active_gas", Type: TypeU32, Size: 4},
	{ID: 0xFFFF2B, Name: "tariff_active_tou_rate", Type: TypeU8, Size: 1},   // index 0..7
	{ID: 0xFFFF2C, Name: "tariff_active_block_rate", Type: TypeU8, Size: 1}, // index 0..7
	{ID: 0xFFFF2D, Name: "tariff_active_price_index_current", Type: TypeU8, Size: 1},
	{ID: 0xFFFF2E, Name: "tariff_active_price", Type: TypeMoney, Size: 4}, // unit rate element A
	{ID: 0xFFC805, Name: "tariff_active_prepayment_emergency_credit", Type: TypeMoney, Size: 4},
	{ID: 0xFFC806, Name: "tariff_active_prepayment_ecredit_availability", Type: TypeMoney, Size: 4},
	{ID: 0xFFC807, Name: "tariff_active_prepayment_debt_recovery_rate", Type: TypeMoney, Size: 4}, // per day
	{ID: 0xFFFF4B, Name: "tariff_active_element_b_tou_rate", Type: TypeU8, Size: 1},               // index 0..3
	{ID: 0xFFFF4C, Name: "tariff_active_element_b_price_index_current", Type: TypeU8, Size: 1},
	{ID: 0xFFFF4D, Name: "tariff_active_element_b_price", Type: TypeMoney, Size: 4}, // unit rate element B
	{ID: 0xFFFF4F, Name: "tariff_future_tou_flag", Type: TypeU8, Size: 1, Writable: true},
	{ID: 0xFFFF23, Name: "tariff_future_standing_charge", Type: TypeMoney, Size: 4, Writable: true},
	{ID: 0xFFFF21, Name: "tariff_future_threshold_mask", Type: TypeThresholdMask, Size: 1, Writable: true},
	{ID: 0xFFFF1F, Name: "tariff_future_threshold_values", Type: TypeThresholdValues, Size: 14, Writable: true},
	{ID: 0xFFFF24, Name: "tariff_future_activation_datetime", Type: TypeEpoch, Size: 4, Writable: true}, // meter clock
	{ID: 0xFFC965, Name: "tariff_future_gas", Type: TypeU32, Size: 4, Writable: true},
	{ID: 0xFFC808, Name: "tariff_future_prepayment_emergency_credit", Type: TypeMoney, Size: 4, Writable: true},
	{ID: 0xFFC809, Name: "tariff_future_prepayment_ecredit_availability", Type: TypeMoney, Size: 4, Writable: true},
	{ID: 0xFFC80A, Name: "tariff_future_prepayment_debt_recovery_rate", Type: TypeMoney, Size: 4, Writable: true},

	// Names the reference uses without giving their values (A.8.2); the
	// values below are this project's choice (doc.go).
	{ID: 0xFE0001, Name: "daylight_savings_correction_flag", Type: TypeU8, Size: 1, Writable: true, Ours: true},
	{ID: 0xFE0002, Name: "backlight", Type: TypeU8, Size: 1, Writable: true, Ours: true},   // BacklightSetting
	{ID: 0xFE0003, Name: "load_switch", Type: TypeU8, Size: 1, Writable: true, Ours: true}, // LoadSwitchSetting
	{ID: 0xFE0004, Name: "prepay_no_debt_recovery_when_emergency_credit_flag", Type: TypeU8, Size: 1, Writable: true, Ours: true},
	{ID: 0xFE0005, Name: "prepay_no_standing_charge_when_power_fail_flag", Type: TypeU8, Size: 1, Writable: true, Ours: true},
	{ID: 0xFE0006, Name: "event_log", Type: TypeRaw, Ours: true}, // used with FormatEventLog only
	{ID: 0xFE0007, Name: "three_phase_hardware_configuration", Type: TypeThreePhaseConfig, Size: 4, Ours: true},
}

// aliases are second names for ids above: the reference's read_element_*
// are almost certainly element_a/b (A.8.2), and its three-phase totals are
// taken to be the three-phase channel ids (A.8.2's hypothesis).
var aliases = map[string]ObjectID{
	"read_element_a":                  0xFFFFFC,
	"read_element_b":                  0xFFFFF8,
	"three_phase_total_active_import": 0x010800,
	"three_phase_total_active_export": 0x020800,
}

var (
	byID   = map[ObjectID]*Object{}
	byName = map[string]*Object{}
)

func init() {
	add := func(o Object) {
		if _, dup := byID[o.ID]; dup {
			panic("emop: duplicate object id " + o.ID.String())
		}
		p := &o
		byID[o.ID], byName[o.Name] = p, p
	}
	for _, o := range objects {
		add(o)
	}
	// Regular families (A.8.1): 8 × 8 block rates, active and future, and
	// element-B TOU rates 1..4. u32le GBP×1e5 each.
	for blk := 1; blk <= 8; blk++ {
		for r := 1; r <= 8; r++ {
			off := ObjectID((blk-1)*8 + r)
			add(Object{ID: 0xFFF900 + off, Name: fmt.Sprintf("tariff_active_block_%d_rate_%d", blk, r), Type: TypeMoney, Size: 4})
			add(Object{ID: 0xFFF800 + off, Name: fmt.Sprintf("tariff_future_block_%d_rate_%d", blk, r), Type: TypeMoney, Size: 4, Writable: true})
		}
	}
	for n := 1; n <= 4; n++ {
		add(Object{ID: 0xFFF700 + ObjectID(n), Name: fmt.Sprintf("tariff_active_element_b_tou_rate_%d", n), Type: TypeMoney, Size: 4})
		add(Object{ID: 0xFFF600 + ObjectID(n), Name: fmt.Sprintf("tariff_future_element_b_tou_rate_%d", n), Type: TypeMoney, Size: 4, Writable: true})
	}
	for name, id := range aliases {
		byName[name] = byID[id]
	}
}

// Named ids used by the rest of the project.
const (
	ObjTime                        ObjectID = 0x800800
	ObjSerial                      ObjectID = 0x600100
	ObjHardware                    ObjectID = 0x608000
	ObjFirmware                    ObjectID = 0x000201
	ObjPrepayBalance               ObjectID = 0xFFC802
	ObjPrepayEnabled               ObjectID = 0xFFFF0D
	ObjElementA                    ObjectID = 0xFFFFFC
	ObjElementB                    ObjectID = 0xFFFFF8
	ObjCSQ                         ObjectID = 0xFFFD1D
	ObjTokenSend                   ObjectID = 0xFFC803
	ObjVoltage                     ObjectID = 0x0C0700
	ObjTransactionCount            ObjectID = 0xFFC83E
	ObjTransactionDetails          ObjectID = 0xFFC840
	ObjActiveStandingCharge        ObjectID = 0xFFFF22
	ObjActiveThresholdMask         ObjectID = 0xFFFF20
	ObjActiveThresholdValues       ObjectID = 0xFFFF1E
	ObjActiveTouRate               ObjectID = 0xFFFF2B
	ObjActiveBlockRate             ObjectID = 0xFFFF2C
	ObjActivePrice                 ObjectID = 0xFFFF2E
	ObjActiveBlock8Rate1           ObjectID = 0xFFF939
	ObjActiveEmergencyCredit       ObjectID = 0xFFC805
	ObjActiveECreditAvailability   ObjectID = 0xFFC806
	ObjActiveDebtRecoveryRate      ObjectID = 0xFFC807
	ObjActiveElementBTouRate       ObjectID = 0xFFFF4B
	ObjActiveElementBPrice         ObjectID = 0xFFFF4D
	ObjFutureTouFlag               ObjectID = 0xFFFF4F
	ObjFutureStandingCharge        ObjectID = 0xFFFF23
	ObjFutureThresholdMask         ObjectID = 0xFFFF21
	ObjFutureThresholdValues       ObjectID = 0xFFFF1F
	ObjFutureActivation            ObjectID = 0xFFFF24
	ObjFutureGas                   ObjectID = 0xFFC965
	ObjFutureEmergencyCredit       ObjectID = 0xFFC808
	ObjFutureECreditAvailability   ObjectID = 0xFFC809
	ObjFutureDebtRecoveryRate      ObjectID = 0xFFC80A
	ObjFutureBlock8Rate1           ObjectID = 0xFFF839
	ObjFutureElementBTouRate1      ObjectID = 0xFFF601
	ObjDSTFlag                     ObjectID = 0xFE0001
	ObjBacklight                   ObjectID = 0xFE0002
	ObjLoadSwitch                  ObjectID = 0xFE0003
	ObjNoDebtRecoveryInECreditFlag ObjectID = 0xFE0004
	ObjNoStandingChargeInPowerFail ObjectID = 0xFE0005
	ObjEventLog                    ObjectID = 0xFE0006
	ObjThreePhaseHardwareConfig    ObjectID = 0xFE0007
	ObjThreePhaseSerial            ObjectID = 0xD7FF10

	// Instantaneous and average values, and energy registers.
	ObjInstantaneousCurrent                   ObjectID = 0x0B0700
	ObjInstantaneousActivePower               ObjectID = 0x010700
	ObjInstantaneousReactivePower             ObjectID = 0x030700
	ObjInstantaneousPowerFactor               ObjectID = 0x0D0700
	ObjInstantaneousFrequency                 ObjectID = 0x0E0700
	ObjAverageVoltage                         ObjectID = 0x0C1800
	ObjAverageCurrent                         ObjectID = 0x0B1800
	ObjAverageFrequency                       ObjectID = 0x0E1800
	ObjTotalActiveImportEnergy                ObjectID = 0x010800
	ObjTotalActiveExportEnergy                ObjectID = 0x020800
	ObjElementAInstantaneousActivePowerImport ObjectID = 0x150700
	ObjElementBInstantaneousActivePowerImport ObjectID = 0x290700

	// Tariff time switches and active-tariff objects.
	ObjTimeSwitchElementAOrSingle      ObjectID = 0x0D0000
	ObjTimeSwitchElementB              ObjectID = 0x0D00FF
	ObjActiveTouFlag                   ObjectID = 0xFFFF4E
	ObjActiveGas                       ObjectID = 0xFFC964
	ObjActivePriceIndexCurrent         ObjectID = 0xFFFF2D
	ObjActiveElementBPriceIndexCurrent ObjectID = 0xFFFF4C

	// First and last ids of the regular rate families (registered in init):
	// block rates run block 1 rate 1 .. block 8 rate 8 contiguously, and
	// element-B TOU rates 1..4. These are the money rates, not the
	// ObjActiveElementBTouRate index above.
	ObjActiveBlock1Rate1      ObjectID = 0xFFF901
	ObjActiveBlock8Rate8      ObjectID = 0xFFF940
	ObjFutureBlock1Rate1      ObjectID = 0xFFF801
	ObjFutureBlock8Rate8      ObjectID = 0xFFF840
	ObjActiveElementBTouRate1 ObjectID = 0xFFF701
	ObjActiveElementBTouRate4 ObjectID = 0xFFF704
	ObjFutureElementBTouRate4 ObjectID = 0xFFF604
)

// Lookup returns the object with id.
func Lookup(id ObjectID) (*Object, bool) {
	o, ok := byID[id]
	return o, ok
}

// LookupName returns the object named name (aliases included).
func LookupName(name string) (*Object, bool) {
	o, ok := byName[name]
	return o, ok
}

// ParseObject accepts an object name, a 6-digit hex id ("600100", "0x600100")
// or a decimal id as sent on the gRPC wire ("6291712"). Unknown but
// well-formed numeric ids are returned with ok=false so that generic reads
// still work.
func ParseObject(s string) (ObjectID, *Object, error) {
	s = strings.TrimSpace(s)
	if o, ok := byName[s]; ok {
		return o.ID, o, nil
	}
	var id uint64
	var err error
	switch h := strings.TrimPrefix(strings.ToLower(s), "0x"); {
	case len(h) == 6 && isHex(h):
		id, err = strconv.ParseUint(h, 16, 32)
	case strings.HasPrefix(strings.ToLower(s), "0x") && isHex(h):
		id, err = strconv.ParseUint(h, 16, 32)
	default:
		id, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil || id > 0xFFFFFF {
		return 0, nil, &UnknownObjectError{Name: s}
	}
	o := byID[ObjectID(id)]
	return ObjectID(id), o, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return s != ""
}

// All returns every registered object, ordered by name.
func All() []Object {
	out := make([]Object, 0, len(byID))
	for _, o := range byID {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
