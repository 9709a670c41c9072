package postgres

import (
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// NewQueueClient returns a River client for the job queue in the store's
// database (schema QueueSchema). Components that queue or work jobs take
// it through their own small interface, so that only this package knows
// the driver.
func (s *Store) NewQueueClient(cfg *river.Config) (*river.Client[pgx.Tx], error) {
	cfg.Schema = QueueSchema
	return river.NewClient(riverpgxv5.New(s.pool), cfg)
}
