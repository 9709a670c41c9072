package emop_test

import (
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

// samplePayload returns a valid payload for each type, built with the
// package's encoders, and the value DecodeValue must give back.
func samplePayload(t *testing.T, o emop.Object) ([]byte, any) {
	t.Helper()
	ts := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	switch o.Type {
	case emop.TypeBalance:
		b, _ := emop.EncodeBalance(decimal.RequireFromString("-1.5"))
		return b, "-1.50000"
	case emop.TypeMoney:
		b, _ := emop.EncodeMoney(decimal.RequireFromString("0.28430"))
		return b, "0.28430"
	case emop.TypeEpoch:
		b, _ := emop.EncodeEpoch(ts)
		return b, "2026-03-29T01:30:00Z"
	case emop.TypeClock:
		b, _ := emop.EncodeClock(ts)
		return b, "2026-03-29T01:30:00Z"
	case emop.TypeCSQ:
		b, _ := emop.EncodeCSQ(emop.Signal{CSQ: 20, NetworkOperator: 2})
		return b, emop.Signal{CSQ: 20, NetworkOperator: 2}
	case emop.TypeVoltage:
		b, _ := emop.EncodeVoltage(decimal.RequireFromString("241.3"))
		return b, "241.3"
	case emop.TypeU16:
		return []byte{0x34, 0x12}, uint16(0x1234)
	case emop.TypeU32:
		return []byte{1, 0, 0, 0}, uint32(1)
	case emop.TypeU8:
		if o.ID == emop.ObjBacklight || o.ID == emop.ObjLoadSwitch {
			return []byte{1}, nil // checked separately: a map
		}
		return []byte{1}, uint8(1)
	case emop.TypeElement:
		r := emop.Reading{ImportActive: 5, ExportActive: 6, ImportReactive: 7, ExportReactive: 8}
		return r.Encode(), r
	case emop.TypeASCII:
		return emop.EncodeString("EML2137580826", 16), "EML2137580826"
	case emop.TypeFirmware:
		return []byte("3028"), "3_02_8"
	case emop.TypeThresholdMask:
		return []byte{0x01}, nil
	case emop.TypeThresholdValues:
		return make([]byte, 14), nil
	case emop.TypeToken:
		return []byte("12345678901234567890"), "12345678901234567890"
	case emop.TypeTransaction:
		b, _ := emop.Transaction{PaymentTime: ts, PaymentValue: decimal.NewFromInt(10)}.Encode()
		return b, nil
	case emop.TypeThreePhaseConfig:
		return []byte{emop.ThreePhaseCX, 0, 0, 0}, nil
	case emop.TypeRaw:
		return []byte{0xAB, 0xCD}, "abcd"
	}
	t.Fatalf("%s: no sample for type %d", o.Name, o.Type)
	return nil, nil
}

func TestEveryObjectDecodes(t *testing.T) {
	for _, o := range emop.All() {
		p, want := samplePayload(t, o)
		got, err := emop.DecodeValue(&o, p)
		if err != nil {
			t.Errorf("%s (%s): %v", o.Name, o.ID, err)
			continue
		}
		if want != nil && got != want {
			t.Errorf("%s: value %#v, want %#v", o.Name, got, want)
		}
		if got == nil {
			t.Errorf("%s: nil value for a payload", o.Name)
		}
		if o.Size > 0 && o.Type != emop.TypeRaw {
			if _, err := emop.DecodeValue(&o, append(p, 0)); err == nil {
				t.Errorf("%s: a payload one byte too long decodes", o.Name)
			}
		}
		// Every object is reachable through a request frame and back.
		f := emop.Frame{Control: 1, Data: emop.WriteRequest(o.ID, p)}
		b, err := f.AppendTo(nil)
		if err != nil {
			t.Errorf("%s: encode: %v", o.Name, err)
			continue
		}
		back, _, err := emop.DecodeFrame(b)
		rec, err2 := emop.ParseRecord(back.Data)
		if err != nil || err2 != nil || rec.Object != o.ID || !rec.Write || string(rec.Payload) != string(p) {
			t.Errorf("%s: frame round trip %v %v %+v", o.Name, err, err2, rec)
		}
	}
	bl, _ := emop.LookupName("backlight")
	v, _ := emop.DecodeValue(bl, []byte{4})
	if m := v.(map[string]any); m["name"] != "always_off_3p" {
		t.Errorf("backlight 4 = %v", m)
	}
}
