package postgres

import (
	"context"

	"github.com/flows-energy/flows"
)

// EnableOnlySyncersAt enables the syncers of meter_metrics that run at freq
// and disables every other one (flows bench sync times one frequency's set
// on its own).
func (s *Store) EnableOnlySyncersAt(ctx context.Context, freq flows.Frequency) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = $1)`, string(freq))
	return translate(err, "meter metrics")
}

// CountFreshBalances returns how many meter shadows have a balance sync
// recorded (a "balance" key in synced_at).
func (s *Store) CountFreshBalances(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_shadows WHERE synced_at ? 'balance'`).Scan(&n)
	if err != nil {
		return 0, translate(err, "meter shadows")
	}
	return n, nil
}

// QueueJobStates summarises the job queue as "state=count" pairs separated
// by spaces ("available=3 running=40"), or "" when the queue is empty.
func (s *Store) QueueJobStates(ctx context.Context) (string, error) {
	var states string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(string_agg(state || '=' || n, ' '), '')
		FROM (SELECT state::text, count(*) n FROM `+QueueSchema+`.river_job GROUP BY 1) x`).Scan(&states)
	if err != nil {
		return "", translate(err, "queue jobs")
	}
	return states, nil
}
