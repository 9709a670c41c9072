package http

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// Store is what the API reads and writes.
type Store interface {
	Ping(ctx context.Context) error
	Meters(ctx context.Context, f flows.MeterFilter) ([]flows.Meter, error)
	MeterRows(ctx context.Context, f flows.MeterFilter) ([]flows.MeterRow, error)
	CountMeters(ctx context.Context, f flows.MeterFilter) (int, error)
	FleetSummaries(ctx context.Context, escoCode string) ([]flows.FleetSummary, error)
	SignalHistory(ctx context.Context, meterID string, from, to time.Time) ([]flows.SignalPoint, error)
	MeterBySerial(ctx context.Context, serial string) (*flows.Meter, error)
	MeterStatus(ctx context.Context, serial string) (*flows.MeterStatus, error)
	CreateMeter(ctx context.Context, m flows.NewMeter) (*flows.Meter, error)
	UpdateMeter(ctx context.Context, serial string, p flows.MeterPatch) (*flows.Meter, error)
	BalanceHistory(ctx context.Context, meterID string, from, to time.Time, b flows.Bucket) ([]flows.BalancePoint, error)
	MeterEvents(ctx context.Context, meterID string, limit int) ([]flows.MeterEvent, error)
	TariffRequestsForMeter(ctx context.Context, meterID string, limit int) ([]flows.TariffRequest, error)
	SetFutureTariff(ctx context.Context, meterID string, t flows.Tariff, source, requestedBy string) (*flows.TariffRequest, error)
	TariffRequest(ctx context.Context, id string) (*flows.TariffRequest, error)
	CreateTopup(ctx context.Context, meterID, token string, amount *decimal.Decimal, source, requestedBy string) (*flows.Topup, error)
	Topup(ctx context.Context, id string) (*flows.Topup, error)
	CreateSession(ctx context.Context, id string, sess flows.Session) error
	Session(ctx context.Context, id string) (*flows.Session, error)
	DeleteSession(ctx context.Context, id string) error
	TopupsForMeter(ctx context.Context, meterID string, from time.Time, limit int) ([]flows.Topup, error)
	CreateMeterCommand(ctx context.Context, meterID string, kind flows.CommandKind, value, requestedBy string) (*flows.MeterCommand, error)
	MeterCommand(ctx context.Context, id string) (*flows.MeterCommand, error)
	MeterCommandsForMeter(ctx context.Context, meterID string, limit int) ([]flows.MeterCommand, error)
	MeterAudit(ctx context.Context, meterID string, limit int) ([]flows.AuditEntry, error)
	LowBalance(ctx context.Context, threshold decimal.Decimal, escoCode string) ([]flows.LowBalance, error)
	LosingSupply(ctx context.Context, within time.Duration, escoCode string) ([]flows.LosingSupply, error)
	SelfDisconnectionReport(ctx context.Context, from, to time.Time, escoCode string) (*flows.SelfDisconnectionReport, error)
	CreateAlertRule(ctx context.Context, r flows.NewAlertRule, by string) (*flows.AlertRule, error)
	AlertRules(ctx context.Context, escoCode string) ([]flows.AlertRule, error)
	SetAlertRuleEnabled(ctx context.Context, id, escoCode string, enabled bool) (*flows.AlertRule, error)
	Alerts(ctx context.Context, escoCode string, firing bool, limit int) ([]flows.Alert, error)
	Alert(ctx context.Context, id, escoCode string) (*flows.Alert, error)
	AcknowledgeAlert(ctx context.Context, id, escoCode, by string) (*flows.Alert, error)
	AlertDeliveries(ctx context.Context, alertID, escoCode string) ([]flows.AlertDelivery, error)
	OfflineRecently(ctx context.Context, escoCode string) ([]flows.OfflineMeter, error)
	OfflineAll(ctx context.Context, escoCode string) ([]flows.OfflineMeter, error)
	ClockDrifts(ctx context.Context, escoCode string) ([]flows.ClockDrift, error)
	CreateRollout(ctx context.Context, t flows.RolloutTargets, tariff flows.Tariff, abortPct, ratePerMinute int, requestedBy string) (*flows.Rollout, error)
	Rollout(ctx context.Context, id string) (*flows.Rollout, error)
	Intervals(ctx context.Context, meterID string, from, to time.Time, bucket flows.Bucket) ([]flows.IntervalPoint, error)
	SMIPDay(ctx context.Context, meterID, element string, day time.Time) ([]flows.HalfHourReading, error)
	CompletenessOf(ctx context.Context, meterIDs []string) (map[string]flows.MeterCompleteness, error)
	CompletenessOfAll(ctx context.Context) (map[string]flows.MeterCompleteness, error)
}

// route is one API endpoint: the mux pattern, the least role allowed, and
// what the OpenAPI document says of it.
type route struct {
	method, path string
	role         Role
	summary      string
	handle       func(w http.ResponseWriter, r *http.Request, c *Claims) error
}

var roleRank = map[Role]int{RoleReadonly: 1, RoleOperator: 2, RoleAdmin: 3}

func (s *Server) routes() []route {
	return []route{
		{"GET", "/api/v1/meters", RoleReadonly, "List meters (filters: esco, mode, health, low_balance, offline, q; limit, offset)", s.listMeters},
		{"POST", "/api/v1/meters", RoleAdmin, "Register a meter", s.createMeter},
		{"GET", "/api/v1/meters/{serial}", RoleReadonly, "A meter: registry, shadow, registers, freshness", s.getMeter},
		{"PATCH", "/api/v1/meters/{serial}", RoleAdmin, "Change registry fields (name, ip_address, port, mode)", s.patchMeter},
		{"GET", "/api/v1/meters/{serial}/balance", RoleReadonly, "Balance history (from, to, bucket=raw|hour|day)", s.balance},
		{"GET", "/api/v1/meters/{serial}/events", RoleReadonly, "The meter's event log, newest first", s.events},
		{"GET", "/api/v1/meters/{serial}/audit", RoleReadonly, "The meter's audit trail: every write Flows made to it, newest first (limit, default 100, at most 1000)", s.audit},
		{"GET", "/api/v1/meters/{serial}/signal", RoleReadonly, "CSQ and voltage history (from, to: RFC 3339; default the 7 days to now)", s.signal},
		{"GET", "/api/v1/meters/{serial}/intervals", RoleReadonly, "Consumption per half hour or UTC day, per element, and completeness (from, to: RFC 3339 or YYYY-MM-DD; bucket=hh|day; default the previous UTC day of half hours, or the last 30 days)", s.intervals},
		{"GET", "/api/v1/meters/{serial}/intervals.csv", RoleReadonly, "One UTC day of the profile as a SMIP CSV file (day=YYYY-MM-DD, default yesterday; element=A|B, required on twin-element meters)", s.intervalsCSV},
		{"GET", "/api/v1/fleet", RoleReadonly, "Meter counts by state (healthy, unhealthy, offline, stale, low balance) per ESCO", s.fleet},
		{"GET", "/api/v1/meters/{serial}/tariffs", RoleReadonly, "Active and future tariffs as reported, and tariff requests", s.tariffs},
		{"PUT", "/api/v1/meters/{serial}/tariffs/future", RoleOperator, "Schedule a future tariff (the seed's tariff JSON)", s.putFutureTariff},
		{"GET", "/api/v1/tariff-requests/{id}", RoleReadonly, "A tariff request and its status", getRequest(s, "tariff request", s.cfg.Store.TariffRequest, func(v *flows.TariffRequest) string { return v.Serial })},
		{"POST", "/api/v1/meters/{serial}/tokens", RoleOperator, "Submit a 20-digit top-up token", s.postToken},
		{"GET", "/api/v1/meters/{serial}/tokens", RoleReadonly, "The meter's top-ups, newest first, with their status and notes (days, default 90, at most 3660; limit, default 100, at most 1000)", s.listTopups},
		{"GET", "/api/v1/meters/{serial}/commands", RoleReadonly, "The meter's commands (clock, flags, settings), newest first, with their status (limit, default 100, at most 1000)", s.listCommands},
		{"GET", "/api/v1/topups/{id}", RoleReadonly, "A top-up and its status", getRequest(s, "top-up", s.cfg.Store.Topup, func(v *flows.Topup) string { return v.Serial })},
		{"POST", "/api/v1/meters/{serial}/sync", RoleOperator, "Sync the meter now", s.syncMeter},
		{"POST", "/api/v1/meters/{serial}/commands", RoleOperator, "Set the clock or a flag (kind: clock, prepay_enabled, daylight_savings_correction, backlight, load_switch)", s.postCommand},
		{"GET", "/api/v1/commands/{id}", RoleReadonly, "A meter command and its status", getRequest(s, "command", s.cfg.Store.MeterCommand, func(v *flows.MeterCommand) string { return v.Serial })},
		{"POST", "/api/v1/rollouts", RoleOperator, "Roll a future tariff out to an ESCO's meters or a list", s.postRollout},
		{"GET", "/api/v1/rollouts/{id}", RoleReadonly, "A rollout and its progress", s.getRollout},
		{"GET", "/api/v1/views/low-balance", RoleReadonly, "Meters under a balance (threshold, default 5.00)", s.viewLowBalance},
		{"GET", "/api/v1/views/losing-supply", RoleReadonly, "Meters forecast to lose supply within hours (default 48), soonest first", s.viewLosingSupply},
		{"GET", "/api/v1/reports/self-disconnections", RoleReadonly, "Self-disconnections (supply cut for lack of credit) in a period: count, meters, total hours, repeated, longest, and each period (from, to: RFC 3339 or YYYY-MM-DD; default the last 30 days; at most 367)", s.selfDisconnections},
		{"GET", "/api/v1/reports/self-disconnections.csv", RoleReadonly, "The same report's periods as CSV (serial, name, started_at, ended_at, hours, source)", s.selfDisconnectionsCSV},
		{"GET", "/api/v1/alert-rules", RoleReadonly, "The ESCO's alert rules, with how many episodes each has firing", s.listAlertRules},
		{"POST", "/api/v1/alert-rules", RoleOperator, "Make an alert rule (kind: low_balance, losing_supply, self_disconnected, offline, clock_drift, push_failed; threshold; webhook_url and webhook_secret)", s.createAlertRule},
		{"PATCH", "/api/v1/alert-rules/{id}", RoleOperator, "Turn an alert rule on or off (enabled)", s.patchAlertRule},
		{"GET", "/api/v1/alerts", RoleReadonly, "Alert episodes, firing ones by default (state=firing|all; limit)", s.listAlerts},
		{"POST", "/api/v1/alerts/{id}/acknowledge", RoleOperator, "Acknowledge an alert episode", s.acknowledgeAlert},
		{"GET", "/api/v1/alerts/{id}/deliveries", RoleReadonly, "An alert episode's webhook deliveries and their attempts", s.alertDeliveries},
		{"GET", "/api/v1/views/offline", RoleReadonly, "Meters offline (scope=recent (3-24 h, default) or all)", s.viewOffline},
		{"GET", "/api/v1/views/clock-drift", RoleReadonly, "Meters whose clock is a minute or more off", s.viewClockDrift},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors naming what was wrong.
// meterFor finds a meter the caller may see: another ESCO's meter is
// reported as not found.
func (s *Server) meterFor(r *http.Request, c *Claims) (*flows.Meter, error) {
	serial := r.PathValue("serial")
	if err := flows.ValidateSerial(serial); err != nil {
		return nil, err
	}
	m, err := s.cfg.Store.MeterBySerial(r.Context(), serial)
	if err != nil {
		return nil, err
	}
	if !c.sees(m.ESCOCode) {
		return nil, flows.Errorf(flows.ENOTFOUND, "meter %q not found", serial)
	}
	return m, nil
}

func (c *Claims) sees(escoCode string) bool {
	return c.ESCO == "" || strings.EqualFold(c.ESCO, escoCode)
}

// scopeESCO returns the ESCO a query is limited to.
func scopeESCO(r *http.Request, c *Claims) string {
	if c.ESCO != "" {
		return c.ESCO
	}
	return r.URL.Query().Get("esco")
}

func (s *Server) listMeters(w http.ResponseWriter, r *http.Request, c *Claims) error {
	q := r.URL.Query()
	f := flows.MeterFilter{ESCOCode: scopeESCO(r, c), Mode: flows.Mode(q.Get("mode")), Health: flows.Health(q.Get("health")), Query: q.Get("q"),
		Sort: q.Get("sort"), Limit: 100}
	if v := q.Get("low_balance"); v != "" {
		d, err := decimal.NewFromString(v)
		if err != nil {
			return flows.FieldError("low_balance", "%q is not a decimal amount", v)
		}
		f.Below = &d
	}
	if v := q.Get("offline"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return flows.FieldError("offline", "%q is not true or false", v)
		}
		f.Offline = b
	}
	var err error
	if f.Limit, err = intParam(r, "limit", 0, 1, 1000); err != nil {
		return err
	}
	if f.Offset, err = intParam(r, "offset", 0, 0, 1<<30); err != nil {
		return err
	}
	ms, err := s.cfg.Store.MeterRows(r.Context(), f)
	if err != nil {
		return err
	}
	rows, err := s.withCompleteness(r.Context(), ms)
	if err != nil {
		return err
	}
	total, err := s.cfg.Store.CountMeters(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, meterList{Meters: rows, Total: total, Limit: f.Limit, Offset: f.Offset})
	return nil
}

func (s *Server) createMeter(w http.ResponseWriter, r *http.Request, c *Claims) error {
	var body newMeterBody
	if err := decode(r, &body); err != nil {
		return err
	}
	if c.ESCO != "" {
		if body.ESCO != "" && !strings.EqualFold(body.ESCO, c.ESCO) {
			return flows.FieldError("esco", "your token is limited to ESCO %s", c.ESCO)
		}
		body.ESCO = c.ESCO
	}
	m, err := s.cfg.Store.CreateMeter(r.Context(), flows.NewMeter{Serial: body.Serial, Name: body.Name, IPAddress: body.IPAddress, Port: body.Port,
		Hardware: body.Hardware, Mode: body.Mode, ESCOCode: body.ESCO, DaylightSavingsCorrectionEnabled: body.DST})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/meters/"+m.Serial)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (s *Server) getMeter(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	st, err := s.cfg.Store.MeterStatus(r.Context(), m.Serial)
	if err != nil {
		return err
	}
	comp, err := s.meterCompleteness(r.Context(), m.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, meterResource{st, comp})
	return nil
}

func (s *Server) patchMeter(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	var p flows.MeterPatch
	if err := decode(r, &p); err != nil {
		return err
	}
	updated, err := s.cfg.Store.UpdateMeter(r.Context(), m.Serial, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, updated)
	return nil
}

func (s *Server) balance(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to, err := s.timeRange(r)
	if err != nil {
		return err
	}
	bucket := flows.Bucket(q.Get("bucket"))
	if bucket == "" {
		bucket = flows.BucketRaw
	}
	pts, err := s.cfg.Store.BalanceHistory(r.Context(), m.ID, from, to, bucket)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, balanceHistory{Serial: m.Serial, From: from, To: to, Bucket: bucket, Points: pts})
	return nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	evs, err := s.cfg.Store.MeterEvents(r.Context(), m.ID, 200)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, eventList{Serial: m.Serial, Events: evs})
	return nil
}

// intParam reads an integer query parameter in [lo, hi]; def when absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, flows.FieldError(name, "%q is not a number %d-%d", v, lo, hi)
	}
	return n, nil
}

func (s *Server) listTopups(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	days, err := intParam(r, "days", 90, 1, 3660)
	if err != nil {
		return err
	}
	ts, err := s.cfg.Store.TopupsForMeter(r.Context(), m.ID, s.cfg.Now().Add(-time.Duration(days)*24*time.Hour), limit)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []flows.Topup{}
	}
	writeJSON(w, http.StatusOK, topupList{Serial: m.Serial, Topups: ts})
	return nil
}

func (s *Server) listCommands(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	cs, err := s.cfg.Store.MeterCommandsForMeter(r.Context(), m.ID, limit)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []flows.MeterCommand{}
	}
	writeJSON(w, http.StatusOK, commandList{Serial: m.Serial, Commands: cs})
	return nil
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	es, err := s.cfg.Store.MeterAudit(r.Context(), m.ID, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, auditList{Serial: m.Serial, Writes: es})
	return nil
}

func (s *Server) tariffs(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	st, err := s.cfg.Store.MeterStatus(r.Context(), m.Serial)
	if err != nil {
		return err
	}
	reqs, err := s.cfg.Store.TariffRequestsForMeter(r.Context(), m.ID, 20)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, meterTariffs{Serial: m.Serial, Active: st.Shadow.TariffsActive, Future: st.Shadow.TariffsFuture,
		FuturePending: st.FuturePending, Requests: reqs})
	return nil
}

func (s *Server) putFutureTariff(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	var t flows.Tariff
	if err := decode(r, &t); err != nil {
		return err
	}
	if t.ActivationDatetime == nil {
		return flows.FieldError("activation_datetime", "required")
	}
	req, err := s.cfg.Store.SetFutureTariff(r.Context(), m.ID, t, "api", c.Subject)
	if err != nil {
		return trimPrefix(err, "tariffs_future.")
	}
	out := tariffAccepted{ID: req.ID, Status: req.Status, Request: req}
	if req.ActivationAt.Sub(s.cfg.Now()) < 24*time.Hour {
		out.Warnings = []string{"activation is less than 24 hours ahead; the meter may not be reached in time"}
	}
	w.Header().Set("Location", "/api/v1/tariff-requests/"+req.ID)
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// trimPrefix names fields as the API body does (unit_rate_element_a, not
// tariffs_future.unit_rate_element_a).
func trimPrefix(err error, prefix string) error {
	var fe *flows.Error
	if errors.As(err, &fe) && strings.HasPrefix(fe.Field, prefix) {
		return &flows.Error{Code: fe.Code, Field: strings.TrimPrefix(fe.Field, prefix), Message: fe.Message}
	}
	return err
}

// visible returns ENOTFOUND unless the caller may see the meter serial.
func (s *Server) visible(r *http.Request, c *Claims, serial, what string) error {
	if c.ESCO == "" {
		return nil
	}
	m, err := s.cfg.Store.MeterBySerial(r.Context(), serial)
	if err != nil || !c.sees(m.ESCOCode) {
		return flows.Errorf(flows.ENOTFOUND, "%s not found", what)
	}
	return nil
}

// getRequest serves a request (tariff request, top-up, command) by the id
// in the path. A malformed id, a missing one and one whose meter is outside
// the caller's ESCO all answer 404, so ids cannot be probed.
func getRequest[T any](s *Server, what string, fetch func(context.Context, string) (*T, error), serial func(*T) string) func(http.ResponseWriter, *http.Request, *Claims) error {
	return func(w http.ResponseWriter, r *http.Request, c *Claims) error {
		v, err := fetch(r.Context(), r.PathValue("id"))
		if err != nil {
			return notFoundForBadID(err, what)
		}
		if err := s.visible(r, c, serial(v), what); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

// notFoundForBadID reports a malformed id as not found, as a missing one.
func notFoundForBadID(err error, what string) error {
	if flows.ErrorCode(err) == flows.EINVALID || flows.ErrorCode(err) == flows.ENOTFOUND {
		return flows.Errorf(flows.ENOTFOUND, "%s not found", what)
	}
	return err
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	var body tokenBody
	if err := decode(r, &body); err != nil {
		return err
	}
	if len(body.Token) != 20 || strings.Trim(body.Token, "0123456789") != "" {
		return flows.FieldError("token", "must be 20 digits")
	}
	switch body.Source {
	case "", "payment", "gift", "solar_credit", "adjustment":
	default:
		return flows.FieldError("source", "%q is not payment, gift, solar_credit or adjustment", body.Source)
	}
	tu, err := s.cfg.Store.CreateTopup(r.Context(), m.ID, body.Token, body.Amount, body.Source, c.Subject)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/topups/"+tu.ID)
	writeJSON(w, http.StatusAccepted, topupAccepted{ID: tu.ID, Status: tu.Status, Topup: tu})
	return nil
}

func (s *Server) syncMeter(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	if _, err := m.Address(); err != nil {
		return err // a twin is fed from the database where it is active
	}
	if s.cfg.SyncNow == nil {
		return flows.Errorf(flows.EUNAVAILABLE, "syncing is not available from this server")
	}
	if err := s.cfg.SyncNow(r.Context(), m.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, syncQueued{Serial: m.Serial, Status: "queued"})
	return nil
}

func (s *Server) postCommand(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	var body commandBody
	if err := decode(r, &body); err != nil {
		return err
	}
	cmd, err := s.cfg.Store.CreateMeterCommand(r.Context(), m.ID, body.Kind, body.Value, c.Subject)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/commands/"+cmd.ID)
	writeJSON(w, http.StatusAccepted, cmd)
	return nil
}

func (s *Server) postRollout(w http.ResponseWriter, r *http.Request, c *Claims) error {
	var body rolloutBody
	if err := decode(r, &body); err != nil {
		return err
	}
	if c.ESCO != "" {
		if body.ESCO != "" && !strings.EqualFold(body.ESCO, c.ESCO) {
			return flows.FieldError("esco", "your token is limited to ESCO %s", c.ESCO)
		}
		body.ESCO = c.ESCO // a scoped rollout never reaches another ESCO's meters
	}
	if body.Tariff.ActivationDatetime == nil {
		return flows.FieldError("tariff.activation_datetime", "required")
	}
	pct := 20
	if body.AbortFailurePct != nil {
		pct = *body.AbortFailurePct
	}
	ro, err := s.cfg.Store.CreateRollout(r.Context(), flows.RolloutTargets{ESCOCode: body.ESCO, Serials: body.Serials}, body.Tariff, pct, body.RatePerMinute, c.Subject)
	if err != nil {
		var fe *flows.Error
		if errors.As(err, &fe) && strings.HasPrefix(fe.Field, "tariffs_future.") {
			return &flows.Error{Code: fe.Code, Field: "tariff." + strings.TrimPrefix(fe.Field, "tariffs_future."), Message: fe.Message}
		}
		return err
	}
	w.Header().Set("Location", "/api/v1/rollouts/"+ro.ID)
	writeJSON(w, http.StatusAccepted, ro)
	return nil
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request, c *Claims) error {
	ro, err := s.cfg.Store.Rollout(r.Context(), r.PathValue("id"))
	if err != nil {
		return notFoundForBadID(err, "rollout")
	}
	if !ro.VisibleTo(c.ESCO) {
		return flows.Errorf(flows.ENOTFOUND, "rollout not found")
	}
	writeJSON(w, http.StatusOK, ro)
	return nil
}

func (s *Server) viewLowBalance(w http.ResponseWriter, r *http.Request, c *Claims) error {
	th := decimal.NewFromInt(5)
	if v := r.URL.Query().Get("threshold"); v != "" {
		d, err := decimal.NewFromString(v)
		if err != nil {
			return flows.FieldError("threshold", "%q is not a decimal amount", v)
		}
		th = d
	}
	rows, err := s.cfg.Store.LowBalance(r.Context(), th, scopeESCO(r, c))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lowBalanceView{Threshold: th, Meters: rows})
	return nil
}

func (s *Server) viewLosingSupply(w http.ResponseWriter, r *http.Request, c *Claims) error {
	hours := 48
	if v := r.URL.Query().Get("hours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 24*92 {
			return flows.FieldError("hours", "%q is not a whole number of hours from 1 to 2208 (92 days)", v)
		}
		hours = n
	}
	rows, err := s.cfg.Store.LosingSupply(r.Context(), time.Duration(hours)*time.Hour, scopeESCO(r, c))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, losingSupplyView{Hours: hours, Meters: rows})
	return nil
}

func (s *Server) viewOffline(w http.ResponseWriter, r *http.Request, c *Claims) error {
	var rows []flows.OfflineMeter
	var err error
	switch scope := r.URL.Query().Get("scope"); scope {
	case "", "recent":
		rows, err = s.cfg.Store.OfflineRecently(r.Context(), scopeESCO(r, c))
	case "all":
		rows, err = s.cfg.Store.OfflineAll(r.Context(), scopeESCO(r, c))
	default:
		return flows.FieldError("scope", "%q is not recent or all", scope)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, offlineView{Meters: rows})
	return nil
}

func (s *Server) viewClockDrift(w http.ResponseWriter, r *http.Request, c *Claims) error {
	rows, err := s.cfg.Store.ClockDrifts(r.Context(), scopeESCO(r, c))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, clockDriftView{Meters: rows})
	return nil
}

// timeRange is a history's from and to (RFC 3339), by default the 7 days
// to now; EINVALID names the parameter that is not a time, or a range
// that ends before it starts.
func (s *Server) timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	parse := func(name string, def time.Time) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, flows.FieldError(name, "%q is not an RFC 3339 time", v)
		}
		return t, nil
	}
	if to, err = parse("to", s.cfg.Now().UTC()); err != nil {
		return from, to, err
	}
	if from, err = parse("from", to.Add(-7*24*time.Hour)); err != nil {
		return from, to, err
	}
	if to.Before(from) {
		return from, to, flows.FieldError("to", "%s is before from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return from, to, nil
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	from, to, err := s.timeRange(r)
	if err != nil {
		return err
	}
	pts, err := s.cfg.Store.SignalHistory(r.Context(), m.ID, from, to.Add(time.Minute))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, signalHistory{Serial: m.Serial, Points: pts})
	return nil
}

func (s *Server) fleet(w http.ResponseWriter, r *http.Request, c *Claims) error {
	sums, err := s.cfg.Store.FleetSummaries(r.Context(), scopeESCO(r, c))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, fleetView{ESCOs: sums})
	return nil
}
