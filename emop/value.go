package emop

import (
	"encoding/hex"
	"strconv"
	"time"
)

// DecodeValue decodes the payload of object o into a JSON-ready value: money
// as a decimal string with 5 places ("-12.34500"), times as RFC 3339 UTC,
// firmware as "d_dd_d", strings trimmed, the CSQ byte as a Signal, element
// reads as named Wh values. Raw objects give lowercase hex. An empty
// payload (a read request, a write response) gives nil.
func DecodeValue(o *Object, p []byte) (any, error) {
	if len(p) == 0 {
		return nil, nil
	}
	if o.Size != 0 && len(p) != o.Size && o.Type != TypeRaw {
		return nil, &LengthError{What: o.Name, Got: len(p), Want: strconv.Itoa(o.Size)}
	}
	switch o.Type {
	case TypeBalance:
		d, err := DecodeBalance(p)
		return d.StringFixed(5), err
	case TypeMoney:
		d, err := DecodeMoney(p)
		return d.StringFixed(5), err
	case TypeEpoch:
		t, err := DecodeEpoch(p)
		return t.Format(time.RFC3339), err
	case TypeClock:
		t, err := DecodeClock(p)
		if err != nil {
			return nil, err
		}
		return t.Format(time.RFC3339), nil
	case TypeCSQ:
		return DecodeCSQ(p)
	case TypeVoltage:
		v, err := DecodeVoltage(p)
		return v.StringFixed(1), err
	case TypeU8:
		v, err := DecodeU8(p)
		if o.ID == ObjBacklight {
			return map[string]any{"code": v, "name": SettingName(BacklightSettings, v)}, err
		}
		if o.ID == ObjLoadSwitch {
			return map[string]any{"code": v, "name": SettingName(LoadSwitchSettings, v)}, err
		}
		return v, err
	case TypeU16:
		return DecodeU16(p)
	case TypeU32:
		return DecodeU32(p)
	case TypeElement:
		return DecodeReading(p)
	case TypeASCII:
		return DecodeString(p)
	case TypeFirmware:
		return FormatFirmware(p), nil
	case TypeThresholdMask:
		m, err := DecodeThresholdMask(p)
		return m.Map(), err
	case TypeThresholdValues:
		v, err := DecodeThresholdValues(p)
		return v.Map(), err
	case TypeToken:
		return DecodeToken(p)
	case TypeTransaction:
		t, err := DecodeTransaction(p)
		if err != nil {
			return nil, err
		}
		return map[string]string{"payment_time": t.PaymentTime.Format(time.RFC3339), "payment_value": t.PaymentValue.StringFixed(5), "raw": hex.EncodeToString(t.Raw[:])}, nil
	case TypeThreePhaseConfig:
		c, err := DecodeThreePhaseConfig(p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"meter_type": c.MeterType, "meter_type_name": c.TypeName()}, nil
	}
	return hex.EncodeToString(p), nil
}
