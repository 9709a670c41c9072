package command

import (
	"context"
	"log/slog"

	"github.com/flows-energy/flows"
)

// fakeStore isolates the recorder from the database in its unit test; the
// pusher's own tests run against PostgreSQL.
type fakeStore struct {
	Store
	calls *[]string
}

func (f *fakeStore) ApplyObservation(_ context.Context, r flows.SyncResult) error {
	*f.calls = append(*f.calls, "shadow "+r.MeterID)
	return nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
