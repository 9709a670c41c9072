package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
)

// fieldMessage splits the "field: message" errors the database raises.
var fieldMessage = regexp.MustCompile(`^([a-z_.]+): (.*)$`)

// raised turns an exception raised by a trigger into an EINVALID error
// naming the field.
func raised(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.ConstraintName == "" {
		if m := fieldMessage.FindStringSubmatch(pgErr.Message); m != nil {
			return flows.FieldError(m[1], "%s", m[2])
		}
	}
	return translate(err, what)
}

// SetFutureTariff records a request to put tariff on a meter, exactly as a
// plain-SQL update of meter_shadows.tariffs_future does (the same trigger
// validates and records it), and returns the request. EINVALID names the
// field; ENOTFOUND for an unknown meter.
func (s *Store) SetFutureTariff(ctx context.Context, meterID string, t flows.Tariff, source, requestedBy string) (*flows.TariffRequest, error) {
	m, err := s.MeterByID(ctx, meterID)
	if err != nil {
		return nil, err
	}
	if err := t.ValidateRequest("tariffs_future", m.DaylightSavingsCorrectionEnabled, s.now()); err != nil {
		return nil, err
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var id string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('flows.request_source', $1, true)`, source); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_future = $2::jsonb WHERE id = $1`, meterID, string(b))
		if err != nil {
			return raised(err, "tariff request")
		}
		if tag.RowsAffected() == 0 {
			return flows.Errorf(flows.ENOTFOUND, "meter %s not found", meterID)
		}
		err = tx.QueryRow(ctx, `UPDATE flows.tariff_requests SET requested_by = $2
			WHERE id = (SELECT id FROM flows.tariff_requests WHERE meter_id = $1 ORDER BY created_at DESC, id LIMIT 1) RETURNING id`,
			meterID, requestedBy).Scan(&id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.TariffRequest(ctx, id)
}

const tariffRequestCols = `r.id, r.meter_id, m.serial, r.tariff, r.activation_at, r.status, r.attempts, r.next_attempt_at,
	coalesce(r.last_error, ''), r.requested_by, r.source, r.created_at, r.updated_at`

func scanTariffRequest(row pgx.Row) (*flows.TariffRequest, error) {
	var r flows.TariffRequest
	var raw []byte
	var st string
	if err := row.Scan(&r.ID, &r.MeterID, &r.Serial, &raw, &r.ActivationAt, &st, &r.Attempts, &r.NextAttemptAt,
		&r.LastError, &r.RequestedBy, &r.Source, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return nil, err
	}
	r.Status = flows.RequestStatus(st)
	if err := json.Unmarshal(raw, &r.Tariff); err != nil {
		return nil, err
	}
	return &r, nil
}

// TariffRequest returns a request by id. ENOTFOUND if none.
func (s *Store) TariffRequest(ctx context.Context, id string) (*flows.TariffRequest, error) {
	r, err := scanTariffRequest(s.pool.QueryRow(ctx, `SELECT `+tariffRequestCols+`
		FROM flows.tariff_requests r JOIN flows.meter_registry m ON m.id = r.meter_id WHERE r.id = $1`, id))
	if err != nil {
		return nil, translate(err, "tariff request "+id)
	}
	return r, nil
}

// ClaimTariffRequests takes up to n requests due by dueBy — pending, or
// left "sending" by a process that died (lease expired) — and marks them
// sending under a lease, so no two processes push one request.
func (s *Store) ClaimTariffRequests(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.TariffRequest, error) {
	rows, err := s.pool.Query(ctx, `
		WITH c AS (
			UPDATE flows.tariff_requests SET status = 'sending', attempts = attempts + 1, updated_at = now(),
				lease_until = now() + $2::interval
			WHERE id IN (SELECT id FROM flows.tariff_requests
				WHERE (status = 'pending' AND next_attempt_at <= $3) OR (status IN ('sending', 'sent') AND lease_until < now())
				ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING *)
		SELECT `+tariffRequestCols+` FROM c r JOIN flows.meter_registry m ON m.id = r.meter_id`, n, lease.String(), dueBy)
	if err != nil {
		return nil, translate(err, "claim tariff requests")
	}
	return collect(rows, "tariff requests", scanTariffRequest)
}

// TariffRequestsAwaitingActivation lists verified requests whose
// activation time has passed.
func (s *Store) TariffRequestsAwaitingActivation(ctx context.Context, now time.Time, n int) ([]flows.TariffRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tariffRequestCols+` FROM flows.tariff_requests r
		JOIN flows.meter_registry m ON m.id = r.meter_id
		WHERE r.status = 'verified' AND r.activation_at <= $1 AND r.next_attempt_at <= $1
		ORDER BY r.activation_at LIMIT $2`, now, n)
	if err != nil {
		return nil, translate(err, "tariff requests")
	}
	return collect(rows, "tariff requests", scanTariffRequest)
}

// MoveTariffRequest changes a request's status only if it is still in
// from (a superseded request stays superseded). It returns whether it
// moved. retryAt, when not zero, schedules the next attempt.
// With attempt above 0 it moves only the claim that gave the request that
// attempt number: a pusher whose lease was lost, and the request claimed
// again, cannot overwrite what its successor does.
func (s *Store) MoveTariffRequest(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time, attempt int) (bool, error) {
	var next *time.Time
	if !retryAt.IsZero() {
		next = &retryAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE flows.tariff_requests SET status = $3::text::flows.request_status, last_error = NULLIF($4, ''), updated_at = now(),
			next_attempt_at = coalesce($5, next_attempt_at),
			-- Sent is still the claim's: its read-back runs under the lease.
			lease_until = CASE WHEN $3::text = 'sent' THEN lease_until END,
			sent_at = CASE WHEN $3::text = 'sent' THEN now() ELSE sent_at END,
			verified_at = CASE WHEN $3::text = 'verified' THEN now() ELSE verified_at END,
			activated_at = CASE WHEN $3::text = 'active' THEN now() ELSE activated_at END
		WHERE id = $1 AND status = $2::text::flows.request_status AND ($6 = 0 OR attempts = $6)`, id, string(from), string(to), lastError, next, attempt)
	if err != nil {
		return false, translate(err, "tariff request")
	}
	return tag.RowsAffected() == 1, nil
}

// TariffRequestStatus returns a request's current status.
func (s *Store) TariffRequestStatus(ctx context.Context, id string) (flows.RequestStatus, error) {
	var st string
	err := s.pool.QueryRow(ctx, `SELECT status FROM flows.tariff_requests WHERE id = $1`, id).Scan(&st)
	return flows.RequestStatus(st), translate(err, "tariff request")
}

// CreateTopup adds a token to the ledger. ECONFLICT naming "token" when the
// token was submitted before; EINVALID for a malformed token or amount.
func (s *Store) CreateTopup(ctx context.Context, meterID, token string, amount *decimal.Decimal, source, requestedBy string) (*flows.Topup, error) {
	if err := flows.ValidateTopupAmount(amount); err != nil {
		return nil, err
	}
	if source == "" {
		source = "payment"
	}
	// A token only a meter that keeps a prepayment balance can take: not a
	// passive twin (its meter is topped up where it is active), nor a
	// three-phase meter (a credit meter: Flows reads no balance of one).
	// Refused here, saying why, rather than queued for a push to fail.
	var serial, mode, hardware string
	if err := s.pool.QueryRow(ctx, `SELECT serial, mode::text, coalesce(hardware, '') FROM flows.meter_registry WHERE id = $1`, meterID).
		Scan(&serial, &mode, &hardware); err != nil {
		return nil, translate(err, "meter")
	}
	switch {
	case mode != string(flows.ModeActive):
		return nil, flows.Errorf(flows.ECONFLICT, "meter %s is a passive twin: top it up where it is active", serial)
	case emop.IsThreePhase(hardware):
		return nil, flows.Errorf(flows.ECONFLICT, "meter %s is a three-phase meter (%s): a credit meter, with no prepayment balance to top up", serial, hardware)
	}
	var id string
	err := s.pool.QueryRow(ctx, `INSERT INTO flows.topups (meter_id, token, amount, source, requested_by)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, meterID, token, amount, source, requestedBy).Scan(&id)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			switch pgErr.ConstraintName {
			case "topups_token_key":
				return nil, &flows.Error{Code: flows.ECONFLICT, Field: "token", Message: "this token has been submitted before"}
			case "topups_token_format":
				return nil, flows.FieldError("token", "must be 20 digits")
			case "topups_amount_range":
				return nil, flows.FieldError("amount", "must be above 0 and at most 1000")
			}
		}
		return nil, translate(err, "top-up")
	}
	return s.Topup(ctx, id)
}

const topupCols = `t.id, t.meter_id, m.serial, t.amount, t.token, t.source, t.status, coalesce(t.notes, ''), t.attempts,
	t.push_started_at, t.balance_before, t.tx_count_before, t.balance_after, t.requested_by, t.created_at, t.updated_at, t.used_at`

func scanTopup(row pgx.Row) (*flows.Topup, error) {
	var t flows.Topup
	var src, st string
	err := row.Scan(&t.ID, &t.MeterID, &t.Serial, &t.Amount, &t.Token, &src, &st, &t.Notes, &t.Attempts, &t.PushStartedAt,
		&t.BalanceBefore, &t.TxCountBefore, &t.BalanceAfter, &t.RequestedBy, &t.CreatedAt, &t.UpdatedAt, &t.UsedAt)
	t.Source, t.Status = src, flows.TopupStatus(st)
	return &t, err
}

// Topup returns a top-up by id. ENOTFOUND if none.
func (s *Store) Topup(ctx context.Context, id string) (*flows.Topup, error) {
	t, err := scanTopup(s.pool.QueryRow(ctx, `SELECT `+topupCols+` FROM flows.topups t JOIN flows.meter_registry m ON m.id = t.meter_id WHERE t.id = $1`, id))
	if err != nil {
		return nil, translate(err, "top-up "+id)
	}
	return t, nil
}

// TopupsForMeter returns a meter's top-ups created since from, newest
// first, at most limit.
func (s *Store) TopupsForMeter(ctx context.Context, meterID string, from time.Time, limit int) ([]flows.Topup, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+topupCols+` FROM flows.topups t JOIN flows.meter_registry m ON m.id = t.meter_id
		WHERE t.meter_id = $1 AND t.created_at >= $2 ORDER BY t.created_at DESC LIMIT $3`, meterID, from, limit)
	if err != nil {
		return nil, translate(err, "top-ups")
	}
	return collect(rows, "top-ups", scanTopup)
}

// ClaimTopups takes up to n due top-ups under a lease.
func (s *Store) ClaimTopups(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.Topup, error) {
	rows, err := s.pool.Query(ctx, `
		WITH c AS (
			UPDATE flows.topups SET attempts = attempts + 1, updated_at = now(), lease_until = now() + $2::interval
			WHERE id IN (SELECT id FROM flows.topups
				WHERE status = 'wait_token_push' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < now())
				ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING *)
		SELECT `+topupCols+` FROM c t JOIN flows.meter_registry m ON m.id = t.meter_id`, n, lease.String(), dueBy)
	if err != nil {
		return nil, translate(err, "claim top-ups")
	}
	return collect(rows, "claim top-ups", scanTopup)
}

// MarkTopupPushing records, before the token is sent, what the meter
// showed: after a crash the pusher compares against it instead of
// sending again.
// false when the claim with attempt (above 0) is no longer the top-up's.
func (s *Store) MarkTopupPushing(ctx context.Context, id string, balance decimal.Decimal, txCount, attempt int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE flows.topups SET push_started_at = now(), balance_before = $2, tx_count_before = $3, updated_at = now()
		WHERE id = $1 AND ($4 = 0 OR attempts = $4)`, id, balance, txCount, attempt)
	if err != nil {
		return false, translate(err, "top-up")
	}
	return tag.RowsAffected() == 1, nil
}

// FinishTopup sets a top-up's outcome. retryAt (not zero) keeps it waiting
// for another attempt; clearPush forgets a push that did not happen. With
// attempt above 0 only that claim's outcome is written (false otherwise).
func (s *Store) FinishTopup(ctx context.Context, id string, status flows.TopupStatus, notes string, after *decimal.Decimal, retryAt time.Time, clearPush bool, attempt int) (bool, error) {
	var next *time.Time
	if !retryAt.IsZero() {
		next = &retryAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE flows.topups SET status = $2::text::flows.topup_status_enum, notes = $3, balance_after = coalesce($4, balance_after),
			next_attempt_at = coalesce($5, next_attempt_at), lease_until = NULL, updated_at = now(),
			used_at = CASE WHEN $2::text = 'completed' THEN now() ELSE used_at END,
			push_started_at = CASE WHEN $6 THEN NULL ELSE push_started_at END
		WHERE id = $1 AND ($7 = 0 OR attempts = $7)`, id, string(status), notes, after, next, clearPush, attempt)
	if err != nil {
		return false, translate(err, "top-up")
	}
	return tag.RowsAffected() == 1, nil
}

// Audit records one meter write.
func (s *Store) Audit(ctx context.Context, e flows.AuditEntry) error {
	var req *string
	if e.RequestID != "" {
		req = &e.RequestID
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO flows.meter_write_audit (meter_id, request_kind, request_id, requested_by, object, value, outcome, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''))`, e.MeterID, e.RequestKind, req, e.RequestedBy, e.Object, e.Value, e.Outcome, e.Detail)
	return translate(err, "audit")
}

// MeterAudit returns a meter's newest audited writes, newest first: the
// meter page's audit trail and the API's.
func (s *Store) MeterAudit(ctx context.Context, meterID string, limit int) ([]flows.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, request_kind, coalesce(request_id::text, ''), coalesce(requested_by, ''), object,
			coalesce(value, ''), outcome, coalesce(detail, '')
		FROM flows.meter_write_audit WHERE meter_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, meterID, limit)
	if err != nil {
		return nil, translate(err, "audit")
	}
	defer rows.Close()
	out := []flows.AuditEntry{}
	for rows.Next() {
		e := flows.AuditEntry{MeterID: meterID}
		if err := rows.Scan(&e.At, &e.RequestKind, &e.RequestID, &e.RequestedBy, &e.Object, &e.Value, &e.Outcome, &e.Detail); err != nil {
			return nil, err
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// ExtendLeases renews, for lease from now, the leases of the claims a
// pusher is still working on (tariff requests, top-ups, meter commands),
// and returns the ids it renewed: a claim missing from them expired and
// may be another process's now.
func (s *Store) ExtendLeases(ctx context.Context, lease time.Duration, tariffs, topups, commands []flows.Claim) (map[string]bool, error) {
	renewed := map[string]bool{}
	for _, t := range []struct {
		table  string
		claims []flows.Claim
	}{{"tariff_requests", tariffs}, {"topups", topups}, {"meter_commands", commands}} {
		if len(t.claims) == 0 {
			continue
		}
		ids, attempts := make([]string, len(t.claims)), make([]int32, len(t.claims))
		for i, c := range t.claims {
			ids[i], attempts[i] = c.ID, int32(c.Attempt)
		}
		rows, err := s.pool.Query(ctx, `UPDATE flows.`+t.table+` x SET lease_until = now() + $3::interval
			FROM unnest($1::uuid[], $2::int[]) AS c(id, attempt)
			WHERE x.id = c.id AND x.attempts = c.attempt AND x.lease_until >= now() RETURNING x.id::text`, ids, attempts, lease.String())
		if err != nil {
			return renewed, translate(err, t.table)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return renewed, translate(err, t.table)
		}
		for _, id := range got {
			renewed[id] = true
		}
	}
	return renewed, nil
}
