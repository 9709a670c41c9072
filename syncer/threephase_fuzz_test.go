package syncer

import (
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

// Whatever a meter sends as a three-phase interval answer, decoding and
// screening it never panics, and what is kept is storable: half hours, in
// order, from the time asked for to the newest complete one, a value per
// channel, each the meter's raw value scaled by its type.
func FuzzThreePhaseAnswer(f *testing.F) {
	t0 := time.Date(2026, 6, 2, 4, 0, 0, 0, time.UTC)
	block := emop.IntervalBlock{Start: t0, Minutes: 30, Channels: emop.ThreePhaseChannels}
	for i := range 3 {
		v := make([]uint32, len(emop.ThreePhaseChannels))
		for k := range v {
			v[k] = uint32(1000*k + 7*i)
		}
		st := emop.IntervalValidData
		if i == 2 {
			st |= emop.IntervalPowerFail | emop.IntervalPhase2VoltageFailure
		}
		block.Intervals = append(block.Intervals, emop.Interval{Status: st, Values: v})
	}
	full, err := emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{block}}.AppendTo(nil)
	if err != nil {
		f.Fatal(err)
	}
	small, _ := emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{
		{Start: t0, Minutes: 30, Channels: []emop.ObjectID{0x010800, 0x123456}, Intervals: []emop.Interval{{Status: 1, Values: []uint32{5, 6}}}},
		{Start: t0.Add(2 * time.Hour), Minutes: 30, Channels: []emop.ObjectID{0x010800, 0x123456}, Intervals: []emop.Interval{{Status: 1, Values: []uint32{9, 9}}}},
	}}.AppendTo(nil)
	empty, _ := emop.ThreePhaseIntervals{}.AppendTo(nil)
	f.Add(full, uint8(emop.ThreePhaseAX))
	f.Add(full, uint8(emop.ThreePhaseCX))
	f.Add(small, uint8(emop.ThreePhaseAX))
	f.Add(empty, uint8(emop.ThreePhaseAX))
	f.Add(full[:40], uint8(emop.ThreePhaseCX))
	f.Fuzz(func(t *testing.T, resp []byte, meterType uint8) {
		rows, err := decodeThreePhase(resp)
		if err != nil {
			return
		}
		cfg := emop.ThreePhaseConfig{MeterType: meterType % 3}
		newest := t0.Add(6 * time.Hour)
		kept, bad := screenThreePhase(rows, cfg, t0, newest)
		if len(kept)+len(bad) != len(rows) {
			t.Fatalf("%d intervals decoded, %d kept and %d named", len(rows), len(kept), len(bad))
		}
		exp, serr := cfg.Scale()
		if serr != nil && len(kept) > 0 {
			t.Fatalf("%d intervals kept from a meter type that does not scale", len(kept))
		}
		j := 0
		for i, iv := range kept {
			if !iv.At.Equal(iv.At.Truncate(30*time.Minute)) || iv.At.Before(t0) || iv.At.Add(30*time.Minute).After(newest) ||
				(i > 0 && !iv.At.After(kept[i-1].At)) {
				t.Fatalf("kept interval %d at %s", i, iv.At)
			}
			for !rows[j].At.Equal(iv.At) {
				j++
			}
			if len(iv.Values) != len(iv.Channels) || len(iv.Values) != len(rows[j].Values) {
				t.Fatalf("kept interval %d: %d values for %d channels", i, len(iv.Values), len(iv.Channels))
			}
			for k, v := range iv.Values {
				if !v.Equal(decimal.New(int64(rows[j].Values[k]), exp)) || iv.Channels[k] != uint32(rows[j].Channels[k]) {
					t.Fatalf("kept interval %d channel %d: %s, raw %d", i, k, v, rows[j].Values[k])
				}
			}
		}
	})
}
