package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// CreateAlertRule makes an ESCO's alert rule (migration 0032). EINVALID
// names the bad field; ENOTFOUND for an unknown ESCO.
func (s *Store) CreateAlertRule(ctx context.Context, r flows.NewAlertRule, by string) (*flows.AlertRule, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.ESCO == "" {
		return nil, flows.FieldError("esco", "a rule belongs to an ESCO: name its code")
	}
	e, err := s.ESCOByCode(ctx, r.ESCO)
	if err != nil {
		return nil, err
	}
	enabled := r.Enabled == nil || *r.Enabled
	var id string
	err = s.pool.QueryRow(ctx, `INSERT INTO flows.alert_rules (esco, name, kind, threshold, webhook_url, webhook_secret, enabled, created_by)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8) RETURNING id`,
		e.ID, r.Name, string(r.Kind), r.Threshold, r.WebhookURL, r.WebhookSecret, enabled, by).Scan(&id)
	if err != nil {
		return nil, translate(err, "alert rule")
	}
	return s.AlertRule(ctx, id, "")
}

const alertRuleColumns = `ar.id, e.code, ar.name, ar.kind, ar.threshold, coalesce(ar.webhook_url, ''), ar.enabled, ar.created_by, ar.created_at,
	(SELECT count(*) FROM flows.alert_episodes ep WHERE ep.rule_id = ar.id AND ep.resolved_at IS NULL)`

func scanAlertRule(row pgx.Row) (*flows.AlertRule, error) {
	var r flows.AlertRule
	var kind string
	err := row.Scan(&r.ID, &r.ESCO, &r.Name, &kind, &r.Threshold, &r.WebhookURL, &r.Enabled, &r.CreatedBy, &r.CreatedAt, &r.Firing)
	r.Kind = flows.AlertKind(kind)
	r.CreatedAt = r.CreatedAt.UTC()
	return &r, err
}

// AlertRule returns a rule, of escoCode's ESCO when it is set (another
// ESCO's is not found).
func (s *Store) AlertRule(ctx context.Context, id, escoCode string) (*flows.AlertRule, error) {
	if !validUUID(id) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert rule %q not found", id)
	}
	r, err := scanAlertRule(s.pool.QueryRow(ctx, `SELECT `+alertRuleColumns+` FROM flows.alert_rules ar JOIN flows.escos e ON e.id = ar.esco
		WHERE ar.id = $1 AND ($2 = '' OR lower(e.code) = lower($2))`, id, escoCode))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert rule %q not found", id)
	}
	return r, translate(err, "alert rule")
}

// AlertRules lists the rules of escoCode's ESCO (empty: every ESCO's).
func (s *Store) AlertRules(ctx context.Context, escoCode string) ([]flows.AlertRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertRuleColumns+` FROM flows.alert_rules ar JOIN flows.escos e ON e.id = ar.esco
		WHERE $1 = '' OR lower(e.code) = lower($1) ORDER BY e.code, ar.name, ar.id`, escoCode)
	if err != nil {
		return nil, translate(err, "alert rules")
	}
	defer rows.Close()
	out := []flows.AlertRule{}
	for rows.Next() {
		r, err := scanAlertRule(rows)
		if err != nil {
			return nil, translate(err, "alert rules")
		}
		out = append(out, *r)
	}
	return out, translate(rows.Err(), "alert rules")
}

// SetAlertRuleEnabled turns a rule on or off (off: its firing episodes
// resolve at the next evaluation).
func (s *Store) SetAlertRuleEnabled(ctx context.Context, id, escoCode string, enabled bool) (*flows.AlertRule, error) {
	if _, err := s.AlertRule(ctx, id, escoCode); err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE flows.alert_rules SET enabled = $2 WHERE id = $1`, id, enabled); err != nil {
		return nil, translate(err, "alert rule")
	}
	return s.AlertRule(ctx, id, escoCode)
}

const alertColumns = `ep.id, ar.id, ar.name, ar.kind, e.code, mr.serial, coalesce(mr.name, ''), ep.detail, ep.started_at, ep.resolved_at,
	ep.acknowledged_at, coalesce(ep.acknowledged_by, '')`

const alertFrom = ` FROM flows.alert_episodes ep JOIN flows.alert_rules ar ON ar.id = ep.rule_id JOIN flows.escos e ON e.id = ar.esco
	JOIN flows.meter_registry mr ON mr.id = ep.meter_id `

func scanAlert(row pgx.Row) (*flows.Alert, error) {
	var a flows.Alert
	var kind string
	err := row.Scan(&a.ID, &a.RuleID, &a.RuleName, &kind, &a.ESCO, &a.Serial, &a.MeterName, &a.Detail, &a.StartedAt, &a.ResolvedAt,
		&a.AcknowledgedAt, &a.AcknowledgedBy)
	a.Kind = flows.AlertKind(kind)
	inUTC(&a.StartedAt, a.ResolvedAt, a.AcknowledgedAt)
	return &a, err
}

// Alerts lists the episodes of escoCode's ESCO's rules (empty: every
// ESCO's), newest first: only those firing when firing is set.
func (s *Store) Alerts(ctx context.Context, escoCode string, firing bool, limit int) ([]flows.Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+alertFrom+`
		WHERE ($1 = '' OR lower(e.code) = lower($1)) AND (NOT $2 OR ep.resolved_at IS NULL)
		ORDER BY ep.started_at DESC, ep.id LIMIT $3`, escoCode, firing, limit)
	if err != nil {
		return nil, translate(err, "alerts")
	}
	defer rows.Close()
	out := []flows.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, translate(err, "alerts")
		}
		out = append(out, *a)
	}
	return out, translate(rows.Err(), "alerts")
}

// AcknowledgeAlert records that someone has seen an episode (the first
// acknowledgement stands). Another ESCO's episode is not found.
func (s *Store) AcknowledgeAlert(ctx context.Context, id, escoCode, by string) (*flows.Alert, error) {
	if !validUUID(id) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert %q not found", id)
	}
	a, err := scanAlert(s.pool.QueryRow(ctx, `WITH ack AS (
			UPDATE flows.alert_episodes ep SET acknowledged_at = coalesce(ep.acknowledged_at, now()), acknowledged_by = coalesce(ep.acknowledged_by, $3)
			FROM flows.alert_rules ar JOIN flows.escos e ON e.id = ar.esco
			WHERE ep.id = $1 AND ar.id = ep.rule_id AND ($2 = '' OR lower(e.code) = lower($2))
			RETURNING ep.*)
		SELECT `+alertColumns+` FROM ack ep JOIN flows.alert_rules ar ON ar.id = ep.rule_id JOIN flows.escos e ON e.id = ar.esco
			JOIN flows.meter_registry mr ON mr.id = ep.meter_id`, id, escoCode, by))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert %q not found", id)
	}
	return a, translate(err, "alert")
}

// EvaluateAlerts evaluates every rule once (flows.evaluate_alerts) and
// returns the webhook deliveries it made owed.
func (s *Store) EvaluateAlerts(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT flows.evaluate_alerts()`)
	if err != nil {
		return nil, translate(err, "alert evaluation")
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return seqs, translate(err, "alert evaluation")
}

// PendingDeliveries returns the webhook deliveries not yet made, oldest
// first, at most limit.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq FROM flows.alert_deliveries WHERE delivered_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, translate(err, "alert deliveries")
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return seqs, translate(err, "alert deliveries")
}

// WebhookDelivery returns delivery seq. ENOTFOUND once it is gone (its
// rule deleted).
func (s *Store) WebhookDelivery(ctx context.Context, seq int64) (*flows.WebhookDelivery, error) {
	var d flows.WebhookDelivery
	var a flows.Alert
	var kind string
	err := s.pool.QueryRow(ctx, `SELECT d.seq, d.event, d.delivered_at IS NOT NULL, coalesce(ar.webhook_url, ''), coalesce(ar.webhook_secret, ''), ar.threshold::text,
			EXISTS (SELECT 1 FROM flows.alert_deliveries d2 JOIN flows.alert_episodes e2 ON e2.id = d2.episode_id
			        WHERE e2.meter_id = ep.meter_id AND d2.seq < d.seq AND d2.delivered_at IS NULL),
			`+alertColumns+` FROM flows.alert_deliveries d JOIN flows.alert_episodes ep ON ep.id = d.episode_id
			JOIN flows.alert_rules ar ON ar.id = ep.rule_id JOIN flows.escos e ON e.id = ar.esco JOIN flows.meter_registry mr ON mr.id = ep.meter_id
		WHERE d.seq = $1`, seq).Scan(&d.Seq, &d.Event, &d.Delivered, &d.URL, &d.Secret, &d.Threshold, &d.Behind,
		&a.ID, &a.RuleID, &a.RuleName, &kind, &a.ESCO, &a.Serial, &a.MeterName, &a.Detail, &a.StartedAt, &a.ResolvedAt, &a.AcknowledgedAt, &a.AcknowledgedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert delivery %d not found", seq)
	}
	if err != nil {
		return nil, translate(err, "alert delivery")
	}
	a.Kind = flows.AlertKind(kind)
	inUTC(&a.StartedAt, a.ResolvedAt, a.AcknowledgedAt)
	d.Alert = a
	return &d, nil
}

// RecordDeliveryAttempt logs one attempt at delivery seq: the receiver's
// HTTP status (0: none) and error, and whether it was delivered.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, seq int64, status int, errText string, delivered bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.alert_deliveries SET attempts = attempts + 1, last_attempt_at = now(), last_status = NULLIF($2, 0),
		last_error = NULLIF($3, ''), delivered_at = CASE WHEN $4 THEN coalesce(delivered_at, now()) END WHERE seq = $1`, seq, status, errText, delivered)
	return translate(err, "alert delivery")
}

// AlertDeliveries lists an episode's deliveries (the delivery log).
func (s *Store) AlertDeliveries(ctx context.Context, alertID, escoCode string) ([]flows.AlertDelivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.seq, d.episode_id, d.event, d.created_at, d.attempts, d.last_attempt_at, d.last_status, coalesce(d.last_error, ''), d.delivered_at
		FROM flows.alert_deliveries d JOIN flows.alert_episodes ep ON ep.id = d.episode_id JOIN flows.alert_rules ar ON ar.id = ep.rule_id
		JOIN flows.escos e ON e.id = ar.esco
		WHERE d.episode_id = $1 AND ($2 = '' OR lower(e.code) = lower($2)) ORDER BY d.seq`, alertID, escoCode)
	if err != nil {
		return nil, translate(err, "alert deliveries")
	}
	defer rows.Close()
	out := []flows.AlertDelivery{}
	for rows.Next() {
		var d flows.AlertDelivery
		if err := rows.Scan(&d.Seq, &d.AlertID, &d.Event, &d.CreatedAt, &d.Attempts, &d.LastAttemptAt, &d.LastStatus, &d.LastError, &d.DeliveredAt); err != nil {
			return nil, translate(err, "alert deliveries")
		}
		inUTC(&d.CreatedAt, d.LastAttemptAt, d.DeliveredAt)
		out = append(out, d)
	}
	return out, translate(rows.Err(), "alert deliveries")
}

// validUUID says whether id has a UUID's shape (a malformed id is not
// found, rather than a database error).
func validUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

// Alert returns an episode, of escoCode's ESCO when it is set.
func (s *Store) Alert(ctx context.Context, id, escoCode string) (*flows.Alert, error) {
	if !validUUID(id) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert %q not found", id)
	}
	a, err := scanAlert(s.pool.QueryRow(ctx, `SELECT `+alertColumns+alertFrom+` WHERE ep.id = $1 AND ($2 = '' OR lower(e.code) = lower($2))`, id, escoCode))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flows.Errorf(flows.ENOTFOUND, "alert %q not found", id)
	}
	return a, translate(err, "alert")
}

// AlertDeliveriesOwed counts the webhook deliveries not made yet and the
// age of the oldest.
func (s *Store) AlertDeliveriesOwed(ctx context.Context) (owed int, oldest time.Duration, err error) {
	var secs float64
	err = s.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM flows.alert_deliveries WHERE delivered_at IS NULL`).Scan(&owed, &secs)
	return owed, time.Duration(secs * float64(time.Second)), translate(err, "alert deliveries")
}
