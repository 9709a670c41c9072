package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/lifecycle"
	"github.com/flows-energy/flows/postgres"
	"github.com/spf13/cobra"
)

// The history tables' monthly partitions (migration 0014), kept by every
// flows serve process: at start, then daily. Runs in several processes
// take turns per table in the database, so each change happens once.
const (
	defaultPartitionsAhead = 3
	partitionEvery         = 24 * time.Hour
	partitionRetry         = time.Hour   // after a run that failed
	partitionRetryBusy     = time.Minute // after one that met other writers (a lock not granted in time, a deadlock)
	partitionRunTimeout    = 10 * time.Minute
)

// partitionConfig is the maintenance's part of flows serve's flags.
type partitionConfig struct {
	ahead     int            // --partitions-ahead
	retention []string       // --retention TABLE=MONTHS, as given
	months    map[string]int // the retention, parsed
	parsed    bool           // parse succeeded; a config made without flags (the demo's) gets the defaults
}

func addPartitionFlags(cmd *cobra.Command, c *partitionConfig) {
	cmd.Flags().IntVar(&c.ahead, "partitions-ahead", defaultPartitionsAhead,
		"months after the current one whose history-table partitions are made ahead (at start, then daily)")
	cmd.Flags().StringArrayVar(&c.retention, "retention", nil,
		"TABLE=MONTHS: drop TABLE's history by whole months once older than MONTHS months (repeatable; default: keep all); tables: "+
			strings.Join(postgres.PartitionedTables(), ", "))
}

// parse validates the flags: EINVALID naming the flag and the bad value.
func (c *partitionConfig) parse() error {
	if c.ahead < 1 || c.ahead > postgres.MaxPartitionsAhead {
		return flows.FieldError("--partitions-ahead", "%d is not between 1 and %d", c.ahead, postgres.MaxPartitionsAhead)
	}
	c.months = map[string]int{}
	for _, v := range c.retention {
		table, text, ok := strings.Cut(v, "=")
		if !ok {
			return flows.FieldError("--retention", "%q is not TABLE=MONTHS", v)
		}
		months, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			return flows.FieldError("--retention", "%q: %q is not a whole number of months", v, text)
		}
		table = strings.TrimSpace(table)
		if _, dup := c.months[table]; dup {
			return flows.FieldError("--retention", "%q: %s is given twice", v, table)
		}
		if err := postgres.CheckRetention(map[string]int{table: months}); err != nil {
			var e *flows.Error
			errors.As(err, &e)
			return flows.FieldError("--retention", "%q: %s", v, e.Message)
		}
		c.months[table] = months
	}
	c.parsed = true
	return nil
}

// partitionStore is what the maintenance needs of the store.
type partitionStore interface {
	MaintainPartitions(ctx context.Context, now time.Time, ahead int, retention map[string]int) (postgres.PartitionReport, error)
}

// partitionMaintenance runs the store's partition maintenance at start and
// then every partitionEvery, each run bounded by partitionRunTimeout.
type partitionMaintenance struct {
	store     partitionStore
	ahead     int
	retention map[string]int
	now       func() time.Time
	log       *slog.Logger
	loop      lifecycle.Loop
}

func newPartitionMaintenance(store partitionStore, c partitionConfig, log *slog.Logger) *partitionMaintenance {
	if !c.parsed {
		c.ahead, c.months = defaultPartitionsAhead, nil
	}
	return &partitionMaintenance{store: store, ahead: c.ahead, retention: c.months, now: time.Now, log: log}
}

// Start starts the loop; the first run begins at once, in the background.
func (p *partitionMaintenance) Start(ctx context.Context) error {
	p.loop.Start(ctx, p.run)
	return nil
}

// Stop cancels a run in progress (its transaction rolls back) and waits.
func (p *partitionMaintenance) Stop(ctx context.Context) error { return p.loop.Stop(ctx) }

func (p *partitionMaintenance) run(ctx context.Context) {
	for {
		wait := p.once(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// once runs the maintenance once and returns when to run it next.
func (p *partitionMaintenance) once(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, partitionRunTimeout)
	defer cancel()
	rep, err := p.store.MaintainPartitions(ctx, p.now(), p.ahead, p.retention)
	for _, t := range rep.Tables {
		if len(t.Created) > 0 || len(t.Dropped) > 0 {
			p.log.Info("history partitions maintained", "table", t.Table, "created", t.Created, "rows_moved", t.Moved, "dropped", t.Dropped)
		}
	}
	switch {
	case err == nil:
		return partitionEvery
	case errors.Is(err, context.Canceled):
		return partitionRetry
	case flows.ErrorCode(err) == flows.EUNAVAILABLE:
		// Busy, not broken: the demo seeding a month, syncs at start.
		p.log.Warn("history partition maintenance", "error", err, "retry_in", partitionRetryBusy)
		return partitionRetryBusy
	}
	p.log.Error("history partition maintenance", "error", err, "retry_in", partitionRetry)
	return partitionRetry
}
