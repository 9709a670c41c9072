package postgres

import (
	"context"
	"fmt"

	"github.com/flows-energy/flows"
)

// MetersForCLI returns get_meters_for_cli(esco) for an ESCO code ("" = all).
func (s *Store) MetersForCLI(ctx context.Context, esco string) ([]flows.CLIMeter, error) {
	var arg *string
	if esco != "" {
		arg = &esco
	}
	rows, err := s.pool.Query(ctx, `SELECT id, ip_address, serial, name, single_meter_app, esco, csq, health, hardware, feeder
		FROM flows.get_meters_for_cli($1, NULL)`, arg)
	if err != nil {
		return nil, translate(err, "meters")
	}
	defer rows.Close()
	out := []flows.CLIMeter{}
	for rows.Next() {
		var m flows.CLIMeter
		if err := rows.Scan(&m.ID, &m.IPAddress, &m.Serial, &m.Name, &m.SingleMeterApp, &m.ESCO, &m.CSQ, &m.Health, &m.Hardware, &m.Feeder); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ListenRegistry calls changed whenever a meter is added, removed, or
// changes address, mode or ESCO, until ctx ends. It holds one connection.
func (s *Store) ListenRegistry(ctx context.Context, changed func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return translate(err, "listen")
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN flows_registry"); err != nil {
		return fmt.Errorf("listen for registry changes: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN flows_registry") //nolint:errcheck
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("registry notifications: %w", err)
		}
		changed()
	}
}
