package emop_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
)

// BenchmarkFrameEncodeDecode: encode a read request and decode a response,
// per op. Goal ≥ 2 M frames/s on one core (go test -bench Frame -cpu 1).
//
// Its ceiling, measured in the same run for the same number of ops: a
// plain copy of the same bytes (the 18-byte request into the encode
// buffer, the response into a receive buffer) per op. The line reports
// Mframes/s (the codec), ceiling-Mframes/s (the copy) and ratio (codec ÷
// copy).
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
	rate := float64(b.N) / b.Elapsed().Seconds()
	ceiling := copyCeiling(b, b.N, req, resp)
	b.ReportMetric(rate/1e6, "Mframes/s")
	b.ReportMetric(ceiling/1e6, "ceiling-Mframes/s")
	b.ReportMetric(rate/ceiling, "ratio")
	// b.Loop runs this function once (per -count), so this prints once.
	fmt.Printf("emop codec: %.2f M encode+decode pairs/s; plain copy of the same bytes %.2f M/s; ratio %.3f\n",
		rate/1e6, ceiling/1e6, rate/ceiling)
}

// copyCeiling returns how many ops per second copying the bytes the codec
// handles takes: the encoded request into a frame buffer and the response
// into a receive buffer, each checked like the codec's results are, n
// times. The timer is stopped (b.Loop has returned).
func copyCeiling(b *testing.B, n int, req emop.Frame, resp []byte) float64 {
	encoded, err := req.AppendTo(nil)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, emop.MaxFrameSize)
	in := make([]byte, emop.MaxFrameSize)
	t0 := time.Now()
	for range n {
		if copy(out, encoded) != 18 || out[0] != encoded[0] {
			b.Fatal("copy of the request")
		}
		if copy(in, resp) != len(resp) || in[len(resp)-1] != resp[len(resp)-1] {
			b.Fatal("copy of the response")
		}
	}
	return float64(n) / time.Since(t0).Seconds()
}
