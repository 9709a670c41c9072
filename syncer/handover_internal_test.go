package syncer

import (
	"context"
	"errors"
	"testing"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/shopspring/decimal"
)

// voltages answers every read with 240 V and, after the first, wants the
// meter elsewhere (as wantLoop would).
type voltages struct {
	reads  int
	wanted chan struct{}
}

func (v *voltages) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	v.reads++
	if v.reads == 1 {
		close(v.wanted)
	}
	return emop.EncodeVoltage(decimal.NewFromInt(240))
}

func (v *voltages) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	return nil, errors.New("not used")
}

// A three-phase voltage read handed over after L1 stops there: L2 and L3
// are not asked, and are not recorded as refused by the meter (it refused
// nothing) — before, the handover's error was taken for a flaky phase.
func TestHandoverIsNotAPhaseRefusal(t *testing.T) {
	v := &voltages{wanted: make(chan struct{})}
	c := &call{meters: &yielding{Meters: v, wanted: v.wanted}, res: &flows.SyncResult{}}
	err := syncThreePhaseVoltage(context.Background(), c)
	if !errors.Is(err, errHandedOver) {
		t.Fatalf("a read handed over after L1: %v, want errHandedOver", err)
	}
	if v.reads != 1 || len(c.res.Refused) != 0 {
		t.Errorf("%d reads, refused %q: want L1 only and nothing refused", v.reads, c.res.Refused)
	}
	if c.res.Shadow.Voltage3P[0] == nil {
		t.Error("L1, read before the handover, was not kept")
	}
}
