package emop_test

import (
	"testing"

	"github.com/flows-energy/flows/emop"
)

// BenchmarkFrameEncodeDecode: encode a read request and decode a response,
// per op. Goal ≥ 2 M frames/s on one core (go test -bench Frame -cpu 1).
func BenchmarkFrameEncodeDecode(b *testing.B) {
	resp := golden(b)["balance_response"]
	req := emop.Frame{SrcAddr: 0x21AE42, Control: 1, Data: emop.ReadRequest(emop.ObjPrepayBalance)}
	buf := make([]byte, 0, emop.MaxFrameSize)
	b.ReportAllocs()
	for b.Loop() {
		out, err := req.AppendTo(buf[:0])
		if err != nil || len(out) != 18 {
			b.Fatal(err)
		}
		f, _, err := emop.DecodeFrame(resp)
		if err != nil || f.Control != 1 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mframes/s")
}
