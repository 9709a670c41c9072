package postgres

import (
	"context"
	"fmt"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// ImportResult counts what an import did.
type ImportResult struct {
	Created, Updated int
}

// ImportMeters registers meters in one transaction: every entry is
// validated first and an error names the entry and field
// ("meters[3].ip_address"), leaving the database untouched. A serial that
// exists already has its name, address, port and hardware updated (an
// operator re-imports after a SIM swap changes an IP). New meters get the
// registers their layout implies: "twin" → A and B, "solar" → SINGLE
// reversed, otherwise SINGLE.
func (s *Store) ImportMeters(ctx context.Context, escoCode string, meters []flows.NewMeter, layouts []string) (ImportResult, error) {
	return s.ImportMetersWithProgress(ctx, escoCode, meters, layouts, nil)
}

// ImportMetersWithProgress is ImportMeters calling progress (when not
// nil) with the entries written so far, inside the transaction: a long
// import shows it is moving, and still commits all or nothing.
func (s *Store) ImportMetersWithProgress(ctx context.Context, escoCode string, meters []flows.NewMeter, layouts []string, progress func(written int)) (ImportResult, error) {
	var res ImportResult
	seen := map[string]int{}
	for i := range meters {
		meters[i].ESCOCode = escoCode
		if err := meters[i].Validate(); err != nil {
			return res, prefixField(err, fmt.Sprintf("meters[%d].", i))
		}
		if j, dup := seen[meters[i].Serial]; dup {
			return res, flows.FieldError(fmt.Sprintf("meters[%d].serial", i), "%s repeats meters[%d]", meters[i].Serial, j)
		}
		seen[meters[i].Serial] = i
	}
	var escoID *string
	if escoCode != "" {
		e, err := s.ESCOByCode(ctx, escoCode)
		if err != nil {
			return res, flows.FieldError("esco", "no ESCO with code %q", escoCode)
		}
		escoID = &e.ID
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, m := range meters {
			ip, port, mode := insertDefaults(m)
			var id string
			var inserted bool
			err := tx.QueryRow(ctx, `
				INSERT INTO flows.meter_registry (serial, name, ip_address, port, hardware, mode, esco, daylight_savings_correction_enabled)
				VALUES ($1, NULLIF($2, ''), $3::inet, $4, NULLIF($5, ''), $6, $7, $8)
				ON CONFLICT (serial) DO UPDATE SET
					name = coalesce(EXCLUDED.name, meter_registry.name),
					ip_address = EXCLUDED.ip_address, port = EXCLUDED.port,
					hardware = coalesce(EXCLUDED.hardware, meter_registry.hardware),
					esco = coalesce(EXCLUDED.esco, meter_registry.esco)
				RETURNING id, (xmax = 0)`,
				m.Serial, m.Name, ip, port, m.Hardware, string(mode), escoID, m.DaylightSavingsCorrectionEnabled).Scan(&id, &inserted)
			if err != nil {
				return prefixField(translate(err, "meter "+m.Serial), fmt.Sprintf("meters[%d].", i))
			}
			if inserted {
				res.Created++
				layout := ""
				if i < len(layouts) {
					layout = layouts[i]
				}
				if err := InsertRegisters(ctx, tx, id, layout); err != nil {
					return prefixField(translate(err, "registers of "+m.Serial), fmt.Sprintf("meters[%d].", i))
				}
			} else {
				res.Updated++
			}
			if progress != nil {
				progress(i + 1)
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

func prefixField(err error, prefix string) error {
	if e, ok := err.(*flows.Error); ok && e.Field != "" {
		return &flows.Error{Code: e.Code, Field: prefix + e.Field, Message: e.Message}
	}
	return err
}

// InsertRegisters adds the registers a meter's layout implies, inside the
// caller's transaction: "twin" → elements A and B, "solar" → one SINGLE
// register with its direction reversed, anything else → one SINGLE
// register. The importer and the demo seed share it so that a layout means
// the same wherever a meter comes from.
func InsertRegisters(ctx context.Context, tx pgx.Tx, meterID, layout string) error {
	var err error
	switch layout {
	case "twin":
		_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'A'), ($1, 'B')`, meterID)
	case "solar":
		_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element, direction_reversed, nature) VALUES ($1, 'SINGLE', true, 'solar')`, meterID)
	default:
		_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'SINGLE')`, meterID)
	}
	return err
}
