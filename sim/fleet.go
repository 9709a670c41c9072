package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// FleetOptions shape a generated fleet.
type FleetOptions struct {
	// AddressPrefix is the first two octets of the meters' loopback
	// addresses ("127.77"): meter i listens on PREFIX.(i/250).(i%250+1),
	// and beyond the 64,000 addresses that gives, on the next second
	// octets (meter 64,000 on 127.78.0.1): see MeterAddress.
	AddressPrefix string
	// Port is every meter's TCP port (8080 like real meters; 0 = any free).
	Port int
	// Secret derives the meters' token keys, so a fleet regenerated from
	// the same secret accepts the same tokens.
	Secret []byte
	// Faults turns on the realistic share of offline and flaky meters.
	Faults bool
	// ThreePhaseShare, when set, is the share of three-phase meters (0:
	// none), spread evenly, alternately CT-operated and whole current;
	// nil keeps the default two in 25 at indices 22 and 24 of each 25.
	ThreePhaseShare *float64
	// Habits gives every credit (prepayment) meter's customer a top-up
	// habit: of each ten, five weekly, two late (after supply is cut), two
	// rationing and one holidaying (see HabitWeekly and the rest). Without
	// it nobody tops up.
	Habits bool
}

// GenerateFleet returns n meter specs: a realistic mix of single-element
// (B1.w, EMA1.w), twin-element (C1.w) and solar meters (single element,
// exporting, register reversed), two in 25 three-phase (P1.cx and P1.ax,
// from index 22 on), one in twenty a passive twin, a third with
// daylight-savings correction, and with opts.Faults a few offline, flaky
// (corrupt frames, NAKs, latency) or slow. Meter 0 is EML2137580826, the
// seed specification's example.
func GenerateFleet(n int, opts FleetOptions) []Spec {
	if opts.AddressPrefix == "" {
		opts.AddressPrefix = "127.77"
	}
	out := make([]Spec, 0, n)
	for i := range n {
		s := Spec{
			Serial:       fmt.Sprintf("EML22%08d", 1000+i),
			Name:         fmt.Sprintf("Plot %02d", i+1),
			Port:         opts.Port,
			Mode:         "active",
			Hardware:     "EMA1.w",
			Layout:       "single",
			DST:          i%3 == 0,
			Firmware:     "3028",
			LoadA:        300 + (i*37)%500,
			DriftPPM:     float64(i%7-3) * 5,
			ClockOffset:  time.Duration(i%5) * time.Second,
			StartBalance: decimal.NewFromInt(int64(8 + (i*7)%40)),
		}
		if i == 0 {
			s.Serial = "EML2137580826"
		}
		switch {
		case i%4 == 1:
			s.Hardware, s.Layout, s.LoadB = "C1.w", "twin", 2000
		case i%10 == 3:
			s.Layout, s.SolarPeak = "solar", 3000
		case i%2 == 0:
			s.Hardware = "B1.w"
		}
		// Two in every 25 are three-phase, from index 22 on (the first 22
		// meters, which small fleets are made of, never change): a
		// CT-operated plant room and a whole-current supply with solar.
		kind := i % 25
		if p := opts.ThreePhaseShare; p != nil {
			kind = 0
			if n := int(float64(i+1) * *p); n > int(float64(i)**p) {
				kind = 22 + 2*(n%2) // alternately P1.cx and P1.ax
			}
		}
		switch kind {
		case 22:
			s.Hardware, s.Layout, s.LoadA, s.LoadB, s.SolarPeak = "P1.cx", "three_phase", 0, 0, 0
			s.PhaseLoads = [3]int{9000 + (i*13)%3000, 7000, 8000 + (i*7)%2000}
		case 24:
			s.Hardware, s.Layout, s.LoadA, s.LoadB, s.SolarPeak = "P1.ax", "three_phase", 0, 0, 6000
			s.PhaseLoads = [3]int{2500, 1500 + (i*11)%1000, 3000}
		}
		if s.Layout == "three_phase" {
			s.DST = false // no daylight-savings correction on three-phase meters
		}
		if i%11 == 7 {
			s.ClockOffset = 95 * time.Second // a clock that needs correcting
		}
		if i%9 == 4 {
			s.StartBalance = decimal.NewFromInt(3) // close to emergency credit
		}
		if i%20 == 19 {
			s.Mode = "passive" // a digital twin: no hardware here
		} else {
			s.IPAddress = MeterAddress(opts.AddressPrefix, i)
		}
		if opts.Faults && s.Mode == "active" && i > 0 {
			switch {
			case i%17 == 5:
				s.Faults.Offline = true
			case i%13 == 7:
				s.Faults = Faults{CorruptRate: 0.15, NakRate: 0.1, LatencyMin: 50 * time.Millisecond, LatencyMax: 400 * time.Millisecond}
			case i%23 == 11:
				s.Faults = Faults{LatencyMin: time.Second, LatencyMax: 3 * time.Second}
			}
		}
		if opts.Habits && s.Layout != "three_phase" {
			s.Habit = [10]string{HabitWeekly, HabitLate, HabitRation, HabitWeekly, HabitHoliday, HabitWeekly, HabitLate, HabitRation, HabitWeekly, HabitWeekly}[i%10]
		}
		mac := hmac.New(sha256.New, opts.Secret)
		mac.Write([]byte(s.Serial))
		s.Key = hex.EncodeToString(mac.Sum(nil)[:16])
		out = append(out, s)
	}
	return out
}

// MetersPerPrefix is how many meters' addresses a two-octet prefix holds
// (256 × 250): MeterAddress moves on to the next second octet after them.
const MetersPerPrefix = 256 * 250

// MeterAddress is meter i's address under a two-octet prefix ("127.77"):
// PREFIX.(i/250).(i%250+1) for the first MetersPerPrefix meters, and so on
// under the prefixes after it (127.78, ...). Addresses are unique, as the
// meter registry wants them, for as many meters as there are second
// octets left (PrefixRoom).
func MeterAddress(prefix string, i int) string {
	first, second, ok := strings.Cut(prefix, ".")
	b, err := strconv.Atoi(second)
	if !ok || err != nil {
		return fmt.Sprintf("%s.%d.%d", prefix, i/250%256, i%250+1)
	}
	return fmt.Sprintf("%s.%d.%d.%d", first, b+i/MetersPerPrefix, i/250%256, i%250+1)
}

// PrefixRoom is how many meters MeterAddress can address from prefix
// before its second octet passes 255 (0 for a prefix it cannot read).
func PrefixRoom(prefix string) int {
	_, second, ok := strings.Cut(prefix, ".")
	b, err := strconv.Atoi(second)
	if !ok || err != nil || b < 0 || b > 255 {
		return 0
	}
	return (256 - b) * MetersPerPrefix
}

// Registry is the fleet file written by flows sim --registry-out and read
// by flows meter import and flows sim token.
type Registry struct {
	Meters []Spec `json:"meters"`
}

// WriteRegistry writes specs to path as JSON, atomically.
func WriteRegistry(path string, specs []Spec) error {
	return writeJSON(path, Registry{Meters: specs})
}

// ReadRegistry reads a registry file.
func ReadRegistry(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Registry
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a fleet registry: %w", path, err)
	}
	return r.Meters, nil
}

// stateFile is what a state file holds.
type stateFile struct {
	SavedAt time.Time        `json:"saved_at"`
	SimTime time.Time        `json:"sim_time"`
	Specs   []Spec           `json:"specs"`
	Meters  map[string]State `json:"meters"`
}

// SaveState writes every meter's state at simulated time now.
func (f *Fleet) SaveState(path string) error {
	now := f.clock.Now()
	sf := stateFile{SavedAt: time.Now().UTC(), SimTime: now, Meters: map[string]State{}}
	for _, m := range f.meters {
		sf.Meters[m.Spec.Serial] = m.State(now)
		sf.Specs = append(sf.Specs, m.Spec)
	}
	return writeJSON(path, sf)
}

// StateSpecs returns the fleet specs kept in a state file (nil when the
// file does not exist), so a restarted simulator keeps its meters' keys.
func StateSpecs(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return sf.Specs, nil
}

// LoadMeters builds meters for specs, restoring each from the state file
// at path when it has one (a missing file starts every meter afresh). It
// returns the simulated time the file was saved at (zero if none).
func LoadMeters(specs []Spec, path string, now time.Time) ([]*Meter, time.Time, error) {
	var sf stateFile
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &sf); err != nil {
				return nil, time.Time{}, fmt.Errorf("state file %s: %w", path, err)
			}
		case !os.IsNotExist(err):
			return nil, time.Time{}, err
		}
	}
	if sf.SimTime.After(now) {
		now = sf.SimTime // an accelerated fleet does not go back in time
	}
	meters := make([]*Meter, 0, len(specs))
	for _, s := range specs {
		st, ok := sf.Meters[s.Serial]
		if !ok {
			meters = append(meters, NewMeter(s, now))
			continue
		}
		m := newMeter(s)
		m.restore(st)
		if m.st.EventSets == nil {
			m.st.EventSets = map[uint16]uint16{}
		}
		for _, id := range st.UsedTokens {
			m.used[id] = true
		}
		meters = append(meters, m)
	}
	return meters, sf.SimTime, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
