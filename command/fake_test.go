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

func (f *fakeStore) UpdateShadow(_ context.Context, meterID string, _ flows.ShadowUpdate) error {
	*f.calls = append(*f.calls, "shadow "+meterID)
	return nil
}

func (f *fakeStore) SetRegistryFlags(_ context.Context, meterID string, _, _ *bool) error {
	*f.calls = append(*f.calls, "flags "+meterID)
	return nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
