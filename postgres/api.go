package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/flows-energy/flows"
)

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// UpdateMeter changes registry fields of a meter. EINVALID names a bad
// field; ECONFLICT for an address another meter has.
func (s *Store) UpdateMeter(ctx context.Context, serial string, p flows.MeterPatch) (*flows.Meter, error) {
	var sets []string
	args := []any{serial}
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if p.Name != nil {
		if len(*p.Name) > 200 {
			return nil, flows.FieldError("name", "longer than 200 characters")
		}
		set("name", *p.Name)
	}
	if p.IPAddress != nil {
		if err := flows.ValidateMeterAddress(*p.IPAddress); err != nil {
			return nil, err
		}
		args = append(args, *p.IPAddress)
		sets = append(sets, fmt.Sprintf("ip_address = $%d::inet", len(args)))
	}
	if p.Port != nil {
		if *p.Port < 1 || *p.Port > 65535 {
			return nil, flows.FieldError("port", "%d is not a TCP port (1-65535)", *p.Port)
		}
		set("port", *p.Port)
	}
	if p.Mode != nil {
		if !p.Mode.Valid() {
			return nil, flows.FieldError("mode", "%q is not active or passive", *p.Mode)
		}
		set("mode", string(*p.Mode))
	}
	if len(sets) == 0 {
		return nil, flows.FieldError("body", "nothing to change")
	}
	tag, err := s.pool.Exec(ctx, "UPDATE flows.meter_registry SET "+strings.Join(sets, ", ")+" WHERE serial = $1", args...)
	if err != nil {
		return nil, translate(err, "meter")
	}
	if tag.RowsAffected() == 0 {
		return nil, flows.Errorf(flows.ENOTFOUND, "meter %q not found", serial)
	}
	return s.MeterBySerial(ctx, serial)
}

// MeterEvents returns a meter's newest events with their type names.
func (s *Store) MeterEvents(ctx context.Context, meterID string, limit int) ([]flows.MeterEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT e."timestamp", e.event_type, coalesce(e.event_set, 0), coalesce(t.name, '')
		FROM flows.meter_event_log e LEFT JOIN flows.meter_event_log_type t ON t.id = e.event_type
		WHERE e.meter_id = $1 ORDER BY e."timestamp" DESC, e.event_type LIMIT $2`, meterID, limit)
	if err != nil {
		return nil, translate(err, "events")
	}
	defer rows.Close()
	out := []flows.MeterEvent{}
	for rows.Next() {
		var e flows.MeterEvent
		if err := rows.Scan(&e.Timestamp, &e.EventType, &e.EventSet, &e.TypeName); err != nil {
			return nil, err
		}
		e.Timestamp = e.Timestamp.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// TariffRequestsForMeter lists a meter's newest tariff requests.
func (s *Store) TariffRequestsForMeter(ctx context.Context, meterID string, limit int) ([]flows.TariffRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tariffRequestCols+` FROM flows.tariff_requests r
		JOIN flows.meter_registry m ON m.id = r.meter_id WHERE r.meter_id = $1 ORDER BY r.created_at DESC LIMIT $2`, meterID, limit)
	if err != nil {
		return nil, translate(err, "tariff requests")
	}
	out, err := collect(rows, "tariff requests", scanTariffRequest)
	if out == nil {
		out = []flows.TariffRequest{}
	}
	return out, err
}

// LastConfirmedTariffRequest returns the meter's newest tariff request the
// meter confirmed (verified or active), or nil.
func (s *Store) LastConfirmedTariffRequest(ctx context.Context, meterID string) (*flows.TariffRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tariffRequestCols+` FROM flows.tariff_requests r
		JOIN flows.meter_registry m ON m.id = r.meter_id WHERE r.meter_id = $1 AND r.status IN ('verified', 'active')
		ORDER BY r.updated_at DESC LIMIT 1`, meterID)
	if err != nil {
		return nil, translate(err, "tariff requests")
	}
	out, err := collect(rows, "tariff requests", scanTariffRequest)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}
