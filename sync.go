package flows

import (
	"strings"
	"time"
)

// Frequency is how often a syncer runs (meter_metrics.run_frequency).
type Frequency string

// Sync frequencies.
const (
	Hourly     Frequency = "hourly"
	TwelveHour Frequency = "12hourly"
	Daily      Frequency = "daily"
)

// Interval returns the length of a frequency's period.
func (f Frequency) Interval() time.Duration {
	switch f {
	case Hourly:
		return time.Hour
	case TwelveHour:
		return 12 * time.Hour
	case Daily:
		return 24 * time.Hour
	}
	return 0
}

// Valid reports whether f is a known frequency.
func (f Frequency) Valid() bool { return f.Interval() > 0 }

// RegistryUpdate holds registry fields read from a meter; nil fields were
// not read. Only values that differ from the registry are written.
type RegistryUpdate struct {
	Hardware                         *string
	Serial                           *string
	FirmwareVersion                  *string
	PrepayEnabled                    *bool
	DaylightSavingsCorrectionEnabled *bool
}

// MeterEvent is one entry of a meter's event log.
type MeterEvent struct {
	Timestamp time.Time `json:"timestamp"`
	EventType int       `json:"event_type"`
	EventSet  int       `json:"event_set"`
	TypeName  string    `json:"type_name,omitempty"`
}

// SyncResult is what one sync of one meter read, applied in one
// transaction: shadow values, registry fields, new events, and which value
// groups were read (for freshness).
type SyncResult struct {
	MeterID  string
	At       time.Time
	Shadow   ShadowUpdate
	Registry RegistryUpdate
	Events   []MeterEvent
	// Groups names the value groups read successfully ("balance", "csq",
	// "voltage", "clock", "reads", "tariffs_active", ...).
	Groups []string
	// ReadAt is when the read of each group began (a group not in it was
	// read at At): a meter's synced_at says when its values were read, and
	// a group read before a newer observation of it was stored — a
	// top-up's confirmed balance, a tariff read back, pushed to the meter
	// between two requests of the sync — is not written over it.
	ReadAt map[string]time.Time
	// Reached says whether the meter answered at all; Failure is the
	// actionable detail when communication failed (when it never answered
	// in the sync, csq is written NULL, marking an offline period).
	Reached bool
	Failure string
	// Refused names the reads the meter answered but refused or garbled
	// ("SyncerVoltage: NAK 4 (…)"); their stored values are kept.
	Refused []string
	// Invalid names the values the meter reported that Flows cannot
	// store ("tariffs_active.unit_rate_element_a: …"); they were dropped
	// from Shadow, the rest is written.
	Invalid []string
	// Dropped names records the meter reported that Flows kept out
	// (profile records out of order, in the future); the rest is stored.
	Dropped []string
	// Profile holds the profile-log records read, ProfileHoles the half
	// hours the meter said it has none for; ProfileBacklog says older
	// half hours are still missing (for the backfill).
	Profile        []ProfileRecord
	ProfileHoles   []ProfileHole
	ProfileBacklog bool
	// ThreePhaseIntervals holds a three-phase meter's interval profile
	// read (its holes are ProfileHoles of ProfileLogThreePhase).
	ThreePhaseIntervals []ThreePhaseInterval
	// TouchHealth is false when only registry fields were synced.
	TouchHealth bool
}

// Verdict is what a sync says about a meter: its health and the detail
// for health_details, and whether the sync counts as a success (failures
// in a row move a meter to the failing group). It is the one health rule.
//
//   - unreachable: unhealthy, the communication failure;
//   - a value that cannot be stored: unhealthy, naming the field;
//   - every read refused: unhealthy ("NAK 4 (…) on every read");
//   - some reads refused: healthy, naming what was refused;
//   - records kept out (profile records out of order, in the future):
//     healthy, naming them.
func (r *SyncResult) Verdict() (h Health, details string, ok bool) {
	switch {
	case r.Failure != "":
		return HealthUnhealthy, r.Failure, false
	case len(r.Invalid) > 0:
		return HealthUnhealthy, "not stored: " + strings.Join(r.Invalid, "; "), false
	case r.TouchHealth && len(r.Groups) == 0 && len(r.Refused) > 0:
		return HealthUnhealthy, refusedEverything(r.Refused), false
	case len(r.Refused) > 0 || len(r.Dropped) > 0:
		var parts []string
		if len(r.Refused) > 0 {
			parts = append(parts, "refused: "+strings.Join(r.Refused, "; "))
		}
		if len(r.Dropped) > 0 {
			parts = append(parts, "kept out: "+strings.Join(r.Dropped, "; "))
		}
		return HealthHealthy, strings.Join(parts, "; "), true
	}
	return HealthHealthy, "", r.Reached
}

// refusedEverything words a sync in which every read was refused: one
// reason for all when they agree.
func refusedEverything(refused []string) string {
	reason := func(s string) string {
		if _, after, ok := strings.Cut(s, ": "); ok {
			return after
		}
		return s
	}
	first := reason(refused[0])
	for _, s := range refused[1:] {
		if reason(s) != first {
			return "refused every read: " + strings.Join(refused, "; ")
		}
	}
	return first + " on every read"
}

// SkippedSync is a meter whose sync result could not be stored at all
// (its reported serial belongs to another meter, it was deleted while its
// group ran); the other meters of its group were written.
type SkippedSync struct {
	MeterID string
	Err     error
}

// DueSync is a meter whose sync for one frequency should be queued.
type DueSync struct {
	MeterID  string
	Slot     time.Time // this period's slot (the uniqueness key)
	RunAt    time.Time // when to run: the slot, or now to catch up
	Failures int
}

// FailingAfter is the number of consecutive failed syncs after which a
// meter is synced with the failing ones, behind the healthy.
const FailingAfter = 3

// SyncerSpec describes one syncer: a named sync step, a row of
// meter_metrics. The syncer package implements each one by name.
type SyncerSpec struct {
	// Name is meter_metrics.name, exactly as the reference spells it.
	Name string
	// Group is the value group the syncer fills in meter_shadows.synced_at
	// (for freshness); "" for a syncer that writes only registry fields.
	Group string
	// SinglePhaseOnly syncers read objects three-phase meters do not have.
	SinglePhaseOnly bool
	// ThreePhaseOnly syncers read objects only three-phase meters have.
	ThreePhaseOnly bool
	// ScheduledOnly syncers do not run in an on-demand sync (an
	// operator's sync must come back in seconds, not after a day of
	// profile reads).
	ScheduledOnly bool
	// Default is the run_frequency migration 0001 seeds for it.
	Default Frequency
}

// AppliesTo reports whether the syncer runs on a meter: single-phase-only
// syncers skip three-phase meters and three-phase-only syncers the rest.
func (s SyncerSpec) AppliesTo(threePhase bool) bool {
	return !(s.SinglePhaseOnly && threePhase || s.ThreePhaseOnly && !threePhase)
}

// RegistryOnly reports whether the syncer writes registry fields only, and
// so says nothing about the meter's health.
func (s SyncerSpec) RegistryOnly() bool { return s.Group == "" }

// Syncers is the one table of syncers, in the order one sync runs them:
// cheap signal first, then money, then slow-changing settings. Migration
// 0001 seeds meter_metrics with these names and defaults (a test checks
// that they agree).
var Syncers = []SyncerSpec{
	{Name: "SyncerCsq", Group: "csq", Default: Hourly},
	{Name: "SyncerPrepayBalance", Group: "balance", SinglePhaseOnly: true, Default: Hourly},
	{Name: "SyncerClockDiff", Group: "clock", Default: Hourly},
	{Name: "SyncerVoltage", Group: "voltage", SinglePhaseOnly: true, Default: Hourly},
	{Name: "SyncerReads", Group: "reads", SinglePhaseOnly: true, Default: Hourly},
	{Name: "SyncerThreePhaseVoltage", Group: "3p_voltage", ThreePhaseOnly: true, Default: Hourly},
	{Name: "SyncerThreePhaseReads", Group: "3p_reads", ThreePhaseOnly: true, Default: Hourly},
	{Name: "SyncerTariffsActive", Group: "tariffs_active", SinglePhaseOnly: true, Default: TwelveHour},
	{Name: "SyncerTariffsFuture", Group: "tariffs_future", SinglePhaseOnly: true, Default: TwelveHour},
	{Name: "SyncerEventLog", Group: "events", SinglePhaseOnly: true, Default: TwelveHour},
	{Name: "SyncerBacklight", Group: "backlight", Default: Daily},
	{Name: "SyncerLoadSwitch", Group: "load_switch", SinglePhaseOnly: true, Default: Daily},
	{Name: "SyncerHardware", Default: Daily},
	{Name: "SyncerSerial", Default: Daily},
	{Name: "SyncerFirmwareVersion", Default: Daily},
	{Name: "SyncerPrepayEnabled", SinglePhaseOnly: true, Default: Daily},
	{Name: "SyncerDaylightSavingsEnabled", SinglePhaseOnly: true, Default: Daily},
	// Last: its many requests (a day's profile) come after the cheap reads.
	{Name: "SyncerProfileLogs", Group: "profile", SinglePhaseOnly: true, ScheduledOnly: true, Default: Daily},
	{Name: "SyncerThreePhaseIntervals", Group: "3p_intervals", ThreePhaseOnly: true, ScheduledOnly: true, Default: Daily},
}

// SyncerByName returns the syncer named name (case-sensitive, as
// meter_metrics is).
func SyncerByName(name string) (SyncerSpec, bool) {
	for _, s := range Syncers {
		if s.Name == name {
			return s, true
		}
	}
	return SyncerSpec{}, false
}

// GroupSyncer returns the syncer that fills value group g ("" if none).
func GroupSyncer(g string) string {
	for _, s := range Syncers {
		if s.Group == g && g != "" {
			return s.Name
		}
	}
	return ""
}

// StaleAfter is how old a value read at frequency f may be before it is
// stale: twice its interval, so one missed run does not raise an alarm.
func (f Frequency) StaleAfter() time.Duration { return 2 * f.Interval() }

// Stale reports whether a value group last read at syncedAt (nil: never)
// by a syncer running at f is stale at now, for a meter registered at
// since. A value never read is stale only once the meter has missed its
// chance (registered longer than StaleAfter ago): a meter added a minute
// ago, or a fresh demo's fleet before its first round, is not yet late.
// This is the one staleness rule: the store, the API and the dashboard all
// ask it.
func Stale(syncedAt *time.Time, since time.Time, f Frequency, now time.Time) bool {
	last := since
	if syncedAt != nil {
		last = *syncedAt
	}
	return now.Sub(last) > f.StaleAfter()
}

// ValueFreshness says when a group of shadow values was last read and
// whether that is too long ago.
type ValueFreshness struct {
	SyncedAt *time.Time `json:"synced_at"`
	// Interval is how often the group is meant to be read.
	Interval string `json:"interval"`
	// Stale is true when the values are older than twice their interval
	// (or were never read by then since the meter was registered). Stale is not offline: a meter can answer its
	// signal check while its tariff read keeps failing.
	Stale bool `json:"stale"`
}

// Freshness computes the freshness of every scheduled group of a shadow at
// now, given each syncer's frequency, for a meter registered at since.
func Freshness(syncedAt map[string]time.Time, since time.Time, freqs map[string]Frequency, now time.Time) map[string]ValueFreshness {
	out := map[string]ValueFreshness{}
	for syncer, f := range freqs {
		s, ok := SyncerByName(syncer)
		if !ok || s.RegistryOnly() || !f.Valid() {
			continue
		}
		v := ValueFreshness{Interval: string(f)}
		if t, ok := syncedAt[s.Group]; ok {
			v.SyncedAt = &t
		}
		v.Stale = Stale(v.SyncedAt, since, f, now)
		out[s.Group] = v
	}
	return out
}

// OutboxEntry is one shadow update waiting in the replica outbox: the
// columns a sync wrote, keyed by the meter's serial (the id differs in
// each database; the serial does not).
type OutboxEntry struct {
	ID      int64
	Serial  string
	Changes map[string]any
}

// ReplicaStatus is how shipping to one replica database stands.
type ReplicaStatus struct {
	Replica   string    `json:"replica"`
	LastID    int64     `json:"last_id"`    // the newest outbox entry it has
	UpdatedAt time.Time `json:"updated_at"` // when the cursor last moved or failed
	Backlog   int64     `json:"backlog"`    // entries waiting for it
	// FailingID is the entry the replica keeps refusing (nil: none), and
	// FailingAttempts how often in a row; LastError says why.
	FailingID       *int64 `json:"failing_id"`
	FailingAttempts int    `json:"failing_attempts"`
	LastError       string `json:"last_error,omitempty"`
	// Quarantined counts entries set aside after too many refusals.
	Quarantined int64 `json:"quarantined"`
}
