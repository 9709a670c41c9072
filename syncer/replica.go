package syncer

import (
	"context"
	"fmt"
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
	RecordReplicaFailure(ctx context.Context, replica string, id int64, reason string) (int, error)
	QuarantineEntry(ctx context.Context, replica string, e flows.OutboxEntry, reason string, attempts int) error
}

// Replica is a database where the primary's meters are passive
// (postgres.Replica). Apply writes a batch of entries, all or none; an
// entry the replica refuses is EINVALID, any other error means the
// replica could not be asked.
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
	// MaxAttempts is how often an entry the replica refuses is tried
	// before it is quarantined (5).
	MaxAttempts int
	Logger      *slog.Logger
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
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
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
// When the replica refuses the batch, the entries are applied one by one
// up to the refused one: that one is retried (the cursor waits at it, so
// each meter's updates stay in order) and, after MaxAttempts refusals,
// quarantined so that later updates flow again.
func (r *Replicator) shipBatch(ctx context.Context, replica Replica) (int, error) {
	batch, err := r.cfg.Primary.OutboxBatch(ctx, r.cfg.Name, outboxBatch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	err = replica.Apply(ctx, batch)
	if flows.ErrorCode(err) == flows.EINVALID {
		return r.shipOneByOne(ctx, replica, batch)
	}
	if err != nil {
		return 0, err
	}
	if err := r.advance(ctx, batch[len(batch)-1].ID); err != nil {
		return 0, err
	}
	return len(batch), nil
}

func (r *Replicator) shipOneByOne(ctx context.Context, replica Replica, batch []flows.OutboxEntry) (int, error) {
	for i, e := range batch {
		err := replica.Apply(ctx, batch[i:i+1])
		if err == nil {
			continue
		}
		if i > 0 {
			if aerr := r.advance(ctx, batch[i-1].ID); aerr != nil {
				return 0, aerr
			}
		}
		if flows.ErrorCode(err) != flows.EINVALID {
			return i, err // the replica went away meanwhile
		}
		reason := flows.ErrorMessage(err)
		n, ferr := r.cfg.Primary.RecordReplicaFailure(ctx, r.cfg.Name, e.ID, reason)
		if ferr != nil {
			return i, ferr
		}
		if n < r.cfg.MaxAttempts {
			return i, fmt.Errorf("attempt %d of %d: %w", n, r.cfg.MaxAttempts, err)
		}
		if err := r.cfg.Primary.QuarantineEntry(ctx, r.cfg.Name, e, reason, n); err != nil {
			return i, err
		}
		r.cfg.Logger.Error("outbox entry quarantined after repeated refusals; later updates go on",
			"replica", r.cfg.Name, "outbox_id", e.ID, "meter_serial", e.Serial, "attempts", n, "error", reason)
	}
	if err := r.advance(ctx, batch[len(batch)-1].ID); err != nil {
		return 0, err
	}
	return len(batch), nil
}

// advance moves the cursor and prunes what every replica has; a failed
// prune is retried with the next batch and stops nothing.
func (r *Replicator) advance(ctx context.Context, lastID int64) error {
	if err := r.cfg.Primary.AdvanceReplicaCursor(ctx, r.cfg.Name, lastID); err != nil {
		return err
	}
	if err := r.cfg.Primary.PruneOutbox(ctx); err != nil {
		r.cfg.Logger.Warn("pruning the outbox", "error", err)
	}
	return nil
}
