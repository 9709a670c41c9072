package sim

import (
	"encoding/hex"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

// Simulator event ids. 33, 34 and 48 are the reference's; the others fall in
// the reference enum's gap (45-60) and are ours (migration 0002 names them).
const (
	EventPowerUp            = 33
	EventPowerDown          = 34
	EventClockSet           = 45
	EventTariffActivated    = 46
	EventEmergencyCredit    = 47
	EventCreditTokenApplied = 48
	EventSupplyDisconnected = 49
	EventSupplyReconnected  = 50
)

// Units: money in 1e-5 GBP (as meters hold it), energy in joules (W·s).
const (
	jPerKWh    = 3_600_000
	secondsDay = 86_400
	segmentMax = 5 * time.Minute // longest stretch integrated at one power
	eventCap   = 100             // events a meter keeps (10 blocks of 10)
	// DefaultProfileDays is how many days of half-hourly records a meter's
	// profile logs hold unless its Spec says otherwise: real logs are
	// finite, and older records are overwritten.
	DefaultProfileDays = 35
)

// Tariff is a meter tariff in meter units (1e-5 GBP). RateA lives in block
// 8 rate 1 and RateB in element-B TOU rate 1, as the reference writes them.
type Tariff struct {
	StandingCharge      int64     `json:"standing_charge"`
	EmergencyCredit     int64     `json:"emergency_credit"`
	ECreditAvailability int64     `json:"ecredit_availability"`
	DebtRecoveryRate    int64     `json:"debt_recovery_rate"`
	Blocks              [64]int64 `json:"blocks"`        // block b rate r at (b-1)*8 + r - 1
	ElementBTou         [4]int64  `json:"element_b_tou"` // element-B TOU rates 1..4
	ThresholdMask       byte      `json:"threshold_mask"`
	ThresholdValues     [7]uint16 `json:"threshold_values"`
	TouFlag             byte      `json:"tou_flag"`
	Gas                 uint32    `json:"gas"`
	Activation          uint32    `json:"activation"` // EMOP epoch seconds of meter wall-clock time (future only)
}

const block8Rate1 = 56

// RateA is the element-A unit rate.
func (t *Tariff) RateA() int64 { return t.Blocks[block8Rate1] }

// RateB is the element-B unit rate.
func (t *Tariff) RateB() int64 { return t.ElementBTou[0] }

// State is everything about a meter that changes; it is what a state file
// keeps across restarts.
type State struct {
	Balance      int64             `json:"balance"` // 1e-5 GBP; negative on emergency credit
	Debt         int64             `json:"debt"`
	ECActive     bool              `json:"ec_active"`
	Connected    bool              `json:"connected"`
	ImportJ      [2]int64          `json:"import_j"` // elements A, B
	ExportJ      [2]int64          `json:"export_j"`
	ChargeAcc    int64             `json:"charge_acc"` // J × rate not yet whole units
	StandingAcc  int64             `json:"standing_acc"`
	DebtAcc      int64             `json:"debt_acc"`
	Active       Tariff            `json:"active"`
	Future       Tariff            `json:"future"`
	FutureDone   bool              `json:"future_done"` // the future tariff has been activated
	ClockOffset  time.Duration     `json:"clock_offset"`
	DriftFrom    time.Time         `json:"drift_from"`
	UsedTokens   []uint32          `json:"used_tokens"`
	TxCount      uint16            `json:"tx_count"`
	LastTx       emop.Transaction  `json:"last_tx"`
	Events       []emop.Event      `json:"events"` // oldest first
	EventSets    map[uint16]uint16 `json:"event_sets"`
	PrepayOn     bool              `json:"prepay_enabled"`
	DST          bool              `json:"dst"`
	Backlight    uint8             `json:"backlight"`
	LoadSwitch   uint8             `json:"load_switch"`
	NoDebtInEC   bool              `json:"no_debt_recovery_in_ec"`
	NoSCPowerOff bool              `json:"no_standing_charge_power_fail"`
	TimeSwitchA  []byte            `json:"time_switch_a"`
	TimeSwitchB  []byte            `json:"time_switch_b"`
	// Profile is the profile log, one entry per half hour from
	// ProfileStart, oldest first; an entry with status 0 is a half hour
	// the meter holds no record for (it was off). A running meter keeps
	// it compactly (profileLog); State fills it in.
	Profile      []Snapshot `json:"profile"`
	ProfileStart time.Time  `json:"profile_start"`
	// PowerOffUntil is the end of a power cut in progress: the meter
	// neither consumes, records nor answers before it.
	PowerOffUntil time.Time `json:"power_off_until,omitzero"`
	// NextStatus is OR-ed into the next record's status (a power failure
	// or a counter reset it has to report).
	NextStatus uint16 `json:"next_status,omitempty"`
	// HabitCutAt is when a late-topping customer's supply was cut (zero
	// while on supply).
	HabitCutAt time.Time `json:"habit_cut_at,omitzero"`
	LastUpdate time.Time `json:"last_update"`
}

// Snapshot is one half-hour record of the profile logs: cumulative Wh at
// the half hour (what the registers read then), voltage, record status.
type Snapshot struct {
	ImportA uint32 `json:"ia"`
	ImportB uint32 `json:"ib"`
	ExportA uint32 `json:"ea"`
	ExportB uint32 `json:"eb"`
	Voltage uint16 `json:"v"`
	Status  uint16 `json:"s"`
}

// Meter is one simulated meter. Its methods are safe for concurrent use.
type Meter struct {
	Spec Spec
	key  []byte
	addr uint32 // EMOP address
	seed uint64

	mu      sync.Mutex
	st      State
	rng     *rand.Rand
	lastEnd time.Time // real time the last request finished (for MinGap)
	faults  Faults
	used    map[uint32]bool
	prof    profileLog // the profile log; st.Profile stays nil

	active, maxActive atomic.Int32 // connections open at once (overlap check)
	inFlight          int          // connections being served, under mu (MinGap)
	stats             statCounters
}

// MaxConcurrent returns the most connections this meter has had open at
// once: more than 1 means two requests overlapped on the wire.
func (m *Meter) MaxConcurrent() int { return int(m.maxActive.Load()) }

// Stats counts what a meter (or a fleet, summed) was asked and did.
type Stats struct {
	Answered      int64 // requests answered (NAKs included)
	GapViolations int64 // connections refused for coming sooner than MinGap, or during another request
	Dropped       int64 // requests dropped by DropRate
	TimedOut      int64 // requests left unanswered by TimeoutRate
}

type statCounters struct{ answered, gap, dropped, timedOut atomic.Int64 }

// Stats returns the meter's counters.
func (m *Meter) Stats() Stats {
	return Stats{Answered: m.stats.answered.Load(), GapViolations: m.stats.gap.Load(), Dropped: m.stats.dropped.Load(), TimedOut: m.stats.timedOut.Load()}
}

// NewMeter makes a meter at simulated time now with default tariffs and a
// starting balance.
func NewMeter(spec Spec, now time.Time) *Meter {
	m := newMeter(spec)
	d := decimal.RequireFromString
	t := Tariff{
		StandingCharge:      units(d("0.58680")),
		EmergencyCredit:     units(d("15")),
		ECreditAvailability: units(d("10")),
		DebtRecoveryRate:    units(d("0.25")),
	}
	t.Blocks[block8Rate1] = units(d("0.28430"))
	t.ElementBTou[0] = units(d("0.15000"))
	if spec.Layout != "twin" {
		t.ElementBTou[0] = t.Blocks[block8Rate1]
	}
	start := spec.StartBalance
	if start.IsZero() {
		start = d("25")
	}
	m.st = State{
		Balance: units(start), Connected: true, Active: t, Future: t, FutureDone: true,
		ClockOffset: spec.ClockOffset, DriftFrom: now, EventSets: map[uint16]uint16{},
		PrepayOn: !emop.IsThreePhase(spec.Hardware), // three-phase meters are credit meters
		DST:      spec.DST, TimeSwitchA: make([]byte, 80), TimeSwitchB: make([]byte, 80),
		LastUpdate: now.Truncate(time.Second),
	}
	m.event(now, EventPowerUp)
	return m
}

func newMeter(spec Spec) *Meter {
	h := fnv.New64a()
	h.Write([]byte(spec.Serial))
	seed := h.Sum64()
	key, _ := hex.DecodeString(spec.Key)
	return &Meter{
		Spec: spec, key: key, addr: uint32(seed) & 0xFFFFFF, seed: seed,
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), faults: spec.Faults, used: map[uint32]bool{},
	}
}

func units(d decimal.Decimal) int64 { return d.Shift(5).IntPart() }

func money(u int64) decimal.Decimal { return decimal.New(u, -5) }

// Balance returns the meter's credit balance at simulated time now.
func (m *Meter) Balance(now time.Time) decimal.Decimal {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	return money(m.st.Balance)
}

// Snapshot returns a copy of the meter's state advanced to now.
func (m *Meter) State(now time.Time) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	st := m.st
	st.Events = append([]emop.Event(nil), m.st.Events...)
	st.Profile, st.ProfileStart = m.profileSnapshots(), m.prof.start
	return st
}

// restore sets the meter's state from st (a state file's).
func (m *Meter) restore(st State) {
	m.st = st
	m.prof = profileLog{start: st.ProfileStart, limit: profileLimit(m.profileDepth())}
	for _, s := range st.Profile {
		s.Voltage = 0 // worked out again when read
		m.prof.add(s)
	}
	m.st.Profile = nil
	if keep := m.profileDepth(); m.prof.n > keep+keep/8 {
		m.prof.dropOldest(m.prof.n - keep)
	}
	m.st.ProfileStart = time.Time{}
}

// profileSnapshots returns the whole profile log, voltages filled in.
func (m *Meter) profileSnapshots() []Snapshot {
	out := m.prof.snapshots()
	for i := range out {
		if out[i].Status != 0 {
			out[i].Voltage = m.voltage(m.prof.start.Add(time.Duration(i) * 30 * time.Minute))
		}
	}
	return out
}

// record returns profile record i, voltage filled in, and false when the
// meter holds none for that half hour.
func (m *Meter) record(i int) (Snapshot, bool) {
	if i < 0 || i >= m.prof.n {
		return Snapshot{}, false
	}
	s := m.prof.get(i)
	if s.Status == 0 {
		return Snapshot{}, false
	}
	s.Voltage = m.voltage(m.prof.start.Add(time.Duration(i) * 30 * time.Minute))
	return s, true
}

// recordAt returns the profile record of half hour at, if the meter holds one.
func (m *Meter) recordAt(at time.Time) (Snapshot, bool) {
	if at.Before(m.prof.start) {
		return Snapshot{}, false
	}
	return m.record(int(at.Sub(m.prof.start) / (30 * time.Minute)))
}

// MeterTime returns the meter's own clock (UTC) at simulated time now:
// offset plus drift since the clock was last set.
func (m *Meter) MeterTime(now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meterTime(now)
}

func (m *Meter) meterTime(now time.Time) time.Time {
	drift := time.Duration(float64(now.Sub(m.st.DriftFrom)) * m.Spec.DriftPPM / 1e6)
	return now.Add(m.st.ClockOffset + drift).Truncate(time.Second)
}

// wallSeconds is the meter's wall-clock time as EMOP epoch seconds: its
// UTC clock, shown in UK local time when daylight-savings correction is on.
func (m *Meter) wallSeconds(now time.Time) int64 {
	t := m.meterTime(now)
	if m.st.DST {
		_, off := t.In(ukZone).Zone()
		t = t.Add(time.Duration(off) * time.Second)
	}
	return int64(t.Sub(emop.Epoch) / time.Second)
}

// activationAt is the simulated instant at which the meter's wall clock
// reaches the future tariff's activation (drift ignored within a segment).
func (m *Meter) activationAt(now time.Time) time.Time {
	wall := emop.Epoch.Add(time.Duration(m.st.Future.Activation) * time.Second)
	utc := wall
	if m.st.DST {
		local := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, ukZone)
		utc = local.UTC()
	}
	// meterTime(t) ≈ t + offset + drift(now): invert around now.
	return utc.Add(-(m.meterTime(now).Sub(now)))
}

// power returns element A and B load and solar export (W) during the
// half-hour slot starting at t: a deterministic daily shape per meter.
func (m *Meter) power(t time.Time) (a, b, solar int64) {
	slot := int64(t.Hour()*2 + t.Minute()/30)
	// Evening peak, overnight trough; a per-meter phase spreads the fleet.
	shape := [48]int64{40, 35, 30, 30, 30, 30, 30, 30, 35, 40, 45, 60, 90, 110, 100, 80, 70, 70, 70, 70, 75, 80, 85, 85,
		85, 80, 80, 80, 85, 90, 100, 110, 130, 150, 170, 180, 170, 160, 150, 140, 130, 120, 100, 90, 80, 70, 55, 45}
	a = int64(m.Spec.LoadA) * shape[(slot+int64(m.seed%5))%48] / 100
	if m.threePhase() {
		// The phases' loads peak at different times of the day.
		a = 0
		for k, l := range m.Spec.PhaseLoads {
			a += int64(l) * shape[(slot+int64(m.seed%5)+int64(4*k))%48] / 100
		}
	}
	if m.Spec.Layout == "twin" {
		// Element B: off-peak heating, on overnight.
		if slot < 14 {
			b = int64(m.Spec.LoadB)
		}
	}
	if m.away(t) {
		a, b = a/10, b/10 // the fridge and the standby lights
	}
	if m.Spec.SolarPeak > 0 && slot >= 14 && slot < 38 {
		d := slot - 26
		solar = int64(m.Spec.SolarPeak) * (144 - d*d) / 144
	}
	return a, b, solar
}

// advance integrates consumption, charges and events from the last update
// to now, in segments that end at half-hour boundaries, at a future
// tariff's activation, and at most segmentMax apart.
func (m *Meter) advance(now time.Time) {
	now = now.Truncate(time.Second)
	for m.st.LastUpdate.Before(now) {
		from := m.st.LastUpdate
		to := now
		if next := from.Truncate(30 * time.Minute).Add(30 * time.Minute); next.Before(to) {
			to = next
		}
		if lim := from.Add(segmentMax); lim.Before(to) {
			to = lim
		}
		if back := m.st.PowerOffUntil; back.After(from) && back.Before(to) {
			to = back
		}
		pending := !m.st.FutureDone && m.st.Future.Activation != 0
		if pending {
			if at := m.activationAt(from); at.After(from) && at.Before(to) {
				to = at
			}
		}
		m.integrate(from, to)
		m.st.LastUpdate = to
		if m.Spec.Habit != HabitNone {
			m.habit(from, to)
		}
		if m.poweredOff(from) && !m.poweredOff(to) {
			m.event(to, EventPowerUp)
		}
		if pending && m.wallSeconds(to) >= int64(m.st.Future.Activation) {
			m.st.Active = m.st.Future
			m.st.Active.Activation = 0
			m.st.FutureDone = true
			m.event(to, EventTariffActivated)
		}
		if to.Equal(to.Truncate(30 * time.Minute)) {
			m.snapshot(to)
		}
	}
}

func (m *Meter) integrate(from, to time.Time) {
	dt := int64(to.Sub(from) / time.Second)
	if dt <= 0 {
		return
	}
	pa, pb, solar := m.power(from)
	if !m.st.Connected || m.poweredOff(from) {
		pa, pb = 0, 0
	}
	if m.poweredOff(from) {
		solar = 0
	}
	ea, eb := pa*dt, pb*dt
	m.st.ImportJ[0] += ea
	m.st.ImportJ[1] += eb
	m.st.ExportJ[0] += solar * dt
	t := &m.st.Active
	m.st.ChargeAcc += ea*t.RateA() + eb*t.RateB()
	m.st.Balance -= m.st.ChargeAcc / jPerKWh
	m.st.ChargeAcc %= jPerKWh
	m.st.StandingAcc += dt * t.StandingCharge
	m.st.Balance -= m.st.StandingAcc / secondsDay
	m.st.StandingAcc %= secondsDay
	if m.st.Debt > 0 && !(m.st.NoDebtInEC && m.st.Balance < 0) {
		m.st.DebtAcc += dt * t.DebtRecoveryRate
		rec := min(m.st.DebtAcc/secondsDay, m.st.Debt)
		m.st.DebtAcc %= secondsDay
		m.st.Balance -= rec
		m.st.Debt -= rec
	}
	if !m.st.PrepayOn {
		return // credit mode: no emergency credit, no disconnection
	}
	if !m.st.ECActive && m.st.Balance < t.ECreditAvailability {
		m.st.ECActive = true
		m.event(to, EventEmergencyCredit)
	}
	floor := int64(0)
	if m.st.ECActive {
		floor = -t.EmergencyCredit
	}
	if m.st.Connected && m.st.Balance <= floor {
		m.st.Connected = false
		m.event(to, EventSupplyDisconnected)
	}
}

// snapshot writes the profile record of half hour at: the registers as
// they read now, or no record while the power is off.
func (m *Meter) snapshot(at time.Time) {
	s := Snapshot{}
	if !m.poweredOff(at) {
		// No voltage: the log works it out again when read (m.record).
		s = Snapshot{ImportA: uint32(m.st.ImportJ[0] / 3600), ImportB: uint32(m.st.ImportJ[1] / 3600),
			ExportA: uint32(m.st.ExportJ[0] / 3600), ExportB: uint32(m.st.ExportJ[1] / 3600),
			Status: emop.StatusValidData | m.st.NextStatus}
		m.st.NextStatus = 0
	}
	keep := m.profileDepth()
	if m.prof.n == 0 {
		m.prof = profileLog{start: at, limit: profileLimit(keep)}
	}
	// Half hours the model skipped (none in normal running) hold nothing.
	for next := m.prof.start.Add(time.Duration(m.prof.n) * 30 * time.Minute); next.Before(at); next = next.Add(30 * time.Minute) {
		m.prof.add(Snapshot{})
	}
	m.prof.add(s)
	// Drop the oldest records in steps, not one copy per half hour.
	if m.prof.n > keep+keep/8 {
		m.prof.dropOldest(m.prof.n - keep)
	}
}

// profileDepth is how many half-hour records the log holds.
func (m *Meter) profileDepth() int {
	days := m.Spec.ProfileDays
	if days <= 0 {
		days = DefaultProfileDays
	}
	return days * 48
}

// poweredOff reports whether a power cut is in progress at t.
func (m *Meter) poweredOff(t time.Time) bool { return t.Before(m.st.PowerOffUntil) }

// PowerCut cuts the meter's supply from now for d: it consumes nothing,
// records nothing and answers nothing until the power returns, and the
// first record after it carries the power-failure flag.
func (m *Meter) PowerCut(now time.Time, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	m.st.PowerOffUntil = now.Add(d)
	m.st.NextStatus |= emop.StatusPowerFail
	m.event(now, EventPowerDown)
}

// ResetCounters zeroes the meter's energy registers at now, as a counter
// reset does; the next profile record carries the reset flag.
func (m *Meter) ResetCounters(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	m.st.ImportJ, m.st.ExportJ = [2]int64{}, [2]int64{}
	m.st.NextStatus |= emop.StatusReset
}

// ProfileRecord returns the meter's own profile record for half hour at
// (its state advanced to now), and false when it holds none.
func (m *Meter) ProfileRecord(now, at time.Time) (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	return m.recordAt(at)
}

func (m *Meter) voltage(at time.Time) uint16 {
	h := fnv.New32a()
	h.Write([]byte{byte(m.seed), byte(at.Unix() / 300), byte(at.Unix() / 300 >> 8)})
	return uint16(2320 + h.Sum32()%130) // 232.0-244.9 V
}

func (m *Meter) csq(now time.Time) emop.Signal {
	base := int(m.Spec.BaseCSQ)
	if base == 0 {
		base = 12 + int(m.seed%15)
	}
	h := fnv.New32a()
	h.Write([]byte{byte(m.seed >> 8), byte(now.Unix() / 600), byte(now.Unix() / 600 >> 8)})
	v := base + int(h.Sum32()%5) - 2
	return emop.Signal{CSQ: max(0, min(31, v)), NetworkOperator: int(m.seed>>16) % 4}
}

func (m *Meter) event(at time.Time, id uint16) {
	m.st.EventSets[id]++
	m.st.Events = append(m.st.Events, emop.Event{Timestamp: m.meterTime(at), EventID: id, EventSet: m.st.EventSets[id]})
	if len(m.st.Events) > eventCap {
		m.st.Events = append(m.st.Events[:0:0], m.st.Events[len(m.st.Events)-eventCap:]...)
	}
}

// ApplyToken credits a token at simulated time now. Errors: ErrTokenMalformed,
// ErrTokenInvalid (another meter's, or tampered), ErrTokenUsed (replay).
func (m *Meter) ApplyToken(tok string, now time.Time) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyToken(tok, now)
}

func (m *Meter) applyToken(tok string, now time.Time) (Token, error) {
	t, err := ParseToken(tok, m.Spec.Serial, m.key)
	if err != nil {
		return Token{}, err
	}
	if m.used[t.ID] {
		return Token{}, ErrTokenUsed
	}
	m.advance(now)
	m.used[t.ID] = true
	m.st.UsedTokens = append(m.st.UsedTokens, t.ID)
	m.credit(t.Pence*1000, now) // pence → 1e-5 GBP
	return t, nil
}

// SetFaults replaces the meter's fault injection settings.
func (m *Meter) SetFaults(f Faults) {
	m.mu.Lock()
	m.faults = f
	m.mu.Unlock()
}

// Faults returns the meter's fault settings.
func (m *Meter) Faults() Faults {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.faults
}
