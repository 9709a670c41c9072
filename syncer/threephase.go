package syncer

import (
	"context"
	"fmt"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

// The three-phase meters' syncers (flows.Syncers marks them
// ThreePhaseOnly; the engine skips them on single-phase meters).

// syncThreePhaseVoltage reads L1, L2 and L3 into the shadow (volts, as
// single-phase voltage). L2 and L3 are known to fail on back-to-back reads
// (the reference swallows the error): a phase that fails keeps its stored
// value and is named in the meter's health detail ("refused:
// SyncerThreePhaseVoltage: L2: …"), and the phases read are written. L1
// failing fails the syncer as any read does.
func syncThreePhaseVoltage(ctx context.Context, c *call) error {
	for k, id := range emop.ThreePhaseVoltages {
		p, err := c.read(ctx, id)
		if err == nil {
			v, derr := emop.DecodeVoltage(p)
			if err = derr; err == nil {
				c.res.Shadow.Voltage3P[k] = &v
				continue
			}
		}
		if k == 0 || cutShort(ctx, err) {
			return err
		}
		c.res.Refused = append(c.res.Refused, fmt.Sprintf("SyncerThreePhaseVoltage: L%d: %s", k+1, meterconn.Detail(err)))
	}
	return nil
}

// syncThreePhaseReads reads the hardware configuration (its meter type
// decides the scaling: emop.ThreePhaseConfig.Scale) and the active import
// and export totals, into import_a and export_a in kWh — export where
// export belongs, not in import_b as the reference wrote it. The reactive
// and apparent totals have no shadow column and are not read (emop
// three_phase_read shows them). A total that fails is left as stored and
// named; the other is written.
func syncThreePhaseReads(ctx context.Context, c *call) error {
	p, err := c.read(ctx, emop.ObjThreePhaseHardwareConfig)
	if err != nil {
		return err
	}
	cfg, err := emop.DecodeThreePhaseConfig(p)
	if err != nil {
		return err
	}
	if _, err := cfg.Scale(); err != nil {
		return err // an unscaled total would be off by ten
	}
	dst := []struct {
		name string
		id   emop.ObjectID
	}{{"active import", emop.ObjThreePhaseTotalActiveImport}, {"active export", emop.ObjThreePhaseTotalActiveExport}}
	var failed []string
	var last error
	for i, t := range dst {
		p, err := c.read(ctx, t.id)
		if err == nil {
			var raw uint32
			if raw, err = emop.DecodeU32(p); err == nil {
				// To the Wh: the shadow's and the registers' columns
				// hold kWh to 3 places (a CX meter counts 0.1 Wh).
				kwh, _ := cfg.KWh(raw)
				kwh = kwh.Truncate(3)
				if i == 0 {
					c.res.Shadow.ImportA = &kwh
				} else {
					c.res.Shadow.ExportA = &kwh
				}
				continue
			}
		}
		if meterconn.Classify(err).Unreached() || cutShort(ctx, err) {
			return err
		}
		failed, last = append(failed, t.name+": "+meterconn.Detail(err)), err
	}
	switch len(failed) {
	case 0:
		return nil
	case len(dst):
		return last
	}
	c.res.Refused = append(c.res.Refused, "SyncerThreePhaseReads: "+failed[0])
	return nil
}
