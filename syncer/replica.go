package syncer

import (
	"context"
	"log/slog"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/lifecycle"
)

// Outbox is the primary's side of replication: the entries waiting for a
// replica, and the replica's cursor (postgres.Store).
type Outbox interface {
	OutboxBatch(ctx context.Context, replica string, n int) ([]flows.OutboxEntry, error)
	AdvanceReplicaCursor(ctx context.Context, replica string, lastID int64) error
	PruneOutbox(ctx context.Context) error
}

// Replica is a database where the primary's meters are passive
// (postgres.Replica). Apply writes a batch of entries, all or none.
type Replica interface {
	Apply(ctx context.Context, entries []flows.OutboxEntry) error
	Close()
}

// ReplicatorConfig configures a Replicator.
type ReplicatorConfig struct {
	Primary Outbox
	// Open connects to the replica; it is called again after a failure.
	Open func(ctx context.Context) (Replica, error)
	// Name identifies the replica's cursor (postgres.ReplicaName).
	Name     string
	Interval time.Duration // how often to look for new entries (1 s)
	Logger   *slog.Logger
}

// Replicator ships the primary's shadow outbox, in order, to one replica
// database where the same meters are passive. The primary only appends to
// its outbox and never waits on a replica; a replica that is down receives
// everything when it comes back. Delivery is at least once and applying an
// entry twice changes nothing (history rows are keyed by their time).
type Replicator struct {
	cfg  ReplicatorConfig
	loop lifecycle.Loop
}

// outboxBatch is how many entries one replica transaction carries.
const outboxBatch = 500

// NewReplicator checks the configuration; Start runs it.
func NewReplicator(cfg ReplicatorConfig) (*Replicator, error) {
	if cfg.Primary == nil || cfg.Open == nil || cfg.Name == "" {
		return nil, flows.Errorf(flows.EINVALID, "replicator: Primary, Open and Name are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replicator{cfg: cfg}, nil
}

// Start ships entries in the background until Stop. It returns at once.
func (r *Replicator) Start(ctx context.Context) error {
	r.loop.Start(ctx, r.run)
	return nil
}

// Stop stops shipping and waits for the current batch (bounded by ctx).
func (r *Replicator) Stop(ctx context.Context) error { return r.loop.Stop(ctx) }

func (r *Replicator) run(ctx context.Context) {
	var replica Replica
	defer func() {
		if replica != nil {
			replica.Close()
		}
	}()
	backoff := r.cfg.Interval
	for {
		err := func() error {
			if replica == nil {
				p, err := r.cfg.Open(ctx)
				if err != nil {
					return err
				}
				replica = p
			}
			for {
				n, err := r.shipBatch(ctx, replica)
				if err != nil || n == 0 {
					return err
				}
			}
		}()
		wait := r.cfg.Interval
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("replica unavailable; will retry", "replica", r.cfg.Name, "error", err)
			backoff = min(backoff*2, time.Minute)
			wait = backoff
		} else {
			backoff = r.cfg.Interval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// shipBatch applies the next entries to the replica in one transaction and
// then advances the cursor on the primary. It returns how many it shipped.
func (r *Replicator) shipBatch(ctx context.Context, replica Replica) (int, error) {
	batch, err := r.cfg.Primary.OutboxBatch(ctx, r.cfg.Name, outboxBatch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	if err := replica.Apply(ctx, batch); err != nil {
		return 0, err
	}
	if err := r.cfg.Primary.AdvanceReplicaCursor(ctx, r.cfg.Name, batch[len(batch)-1].ID); err != nil {
		return 0, err
	}
	// Entries every replica has are no longer needed; a failed prune is
	// retried with the next batch and stops nothing.
	if err := r.cfg.Primary.PruneOutbox(ctx); err != nil {
		r.cfg.Logger.Warn("pruning the outbox", "error", err)
	}
	return len(batch), nil
}
