package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flows-energy/flows/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReplicatorConfig configures a Replicator.
type ReplicatorConfig struct {
	Primary    *pgxpool.Pool
	ReplicaURL string
	// Name identifies the replica's cursor; default: its host, port and
	// database (never the password).
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
	cfg    ReplicatorConfig
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// replicatedColumns are the shadow columns a replica accepts from the outbox.
var replicatedColumns = map[string]bool{
	"balance": true, "emergency_credit": true, "voltage": true, "import_a": true, "import_b": true, "export_a": true,
	"export_b": true, "tariffs_active": true, "tariffs_future": true, "csq": true, "network_operator": true, "health": true,
	"health_details": true, "clock_time_diff_seconds": true, "backlight": true, "load_switch": true, "updated_at": true,
}

// NewReplicator checks the configuration; Start runs it.
func NewReplicator(cfg ReplicatorConfig) (*Replicator, error) {
	pc, err := pgx.ParseConfig(cfg.ReplicaURL)
	if err != nil {
		return nil, fmt.Errorf("--replica-database-url: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replicator{cfg: cfg, done: make(chan struct{})}, nil
}

// Start ships entries in the background until Stop.
func (r *Replicator) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go r.loop(ctx)
}

// Stop stops shipping and waits for the current batch.
func (r *Replicator) Stop() {
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	})
}

func (r *Replicator) loop(ctx context.Context) {
	defer close(r.done)
	var replica *pgxpool.Pool
	defer func() {
		if replica != nil {
			replica.Close()
		}
	}()
	backoff := r.cfg.Interval
	for {
		err := func() error {
			if replica == nil {
				p, err := postgres.Open(ctx, r.cfg.ReplicaURL)
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

type outboxEntry struct {
	id      int64
	serial  string
	changes map[string]any
}

// shipBatch applies the next entries to the replica in one transaction and
// then advances the cursor on the primary. It returns how many it shipped.
func (r *Replicator) shipBatch(ctx context.Context, replica *pgxpool.Pool) (int, error) {
	if _, err := r.cfg.Primary.Exec(ctx, `INSERT INTO flows.replica_cursor (replica) VALUES ($1) ON CONFLICT DO NOTHING`, r.cfg.Name); err != nil {
		return 0, err
	}
	rows, err := r.cfg.Primary.Query(ctx, `
		SELECT o.id, o.serial, o.changes FROM flows.shadow_outbox o
		WHERE o.id > (SELECT last_id FROM flows.replica_cursor WHERE replica = $1)
		ORDER BY o.id LIMIT 500`, r.cfg.Name)
	if err != nil {
		return 0, err
	}
	var batch []outboxEntry
	for rows.Next() {
		var e outboxEntry
		var raw []byte
		if err := rows.Scan(&e.id, &e.serial, &raw); err != nil {
			rows.Close()
			return 0, err
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&e.changes); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(batch) == 0 {
		return 0, err
	}
	err = pgx.BeginFunc(ctx, replica, func(tx pgx.Tx) error {
		for _, e := range batch {
			sql, args := replicaUpdate(e)
			if sql == "" {
				continue
			}
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("outbox entry %d (%s): %w", e.id, e.serial, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	last := batch[len(batch)-1].id
	if _, err := r.cfg.Primary.Exec(ctx, `UPDATE flows.replica_cursor SET last_id = $2, updated_at = now() WHERE replica = $1`, r.cfg.Name, last); err != nil {
		return 0, err
	}
	// Entries every replica has are no longer needed.
	if _, err := r.cfg.Primary.Exec(ctx, `DELETE FROM flows.shadow_outbox WHERE id <= (SELECT min(last_id) FROM flows.replica_cursor)`); err != nil {
		r.cfg.Logger.Warn("pruning outbox", "error", err)
	}
	return len(batch), nil
}

// replicaUpdate builds the UPDATE of the passive meter with the entry's serial.
func replicaUpdate(e outboxEntry) (string, []any) {
	cols := make([]string, 0, len(e.changes))
	for c := range e.changes {
		if replicatedColumns[c] {
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	args := []any{e.serial}
	var sets []string
	for _, c := range cols {
		v := e.changes[c]
		if n, ok := v.(json.Number); ok {
			v = n.String()
		}
		args = append(args, v)
		cast := ""
		if c == "tariffs_active" || c == "tariffs_future" {
			cast = "::jsonb"
		}
		sets = append(sets, fmt.Sprintf("%s = $%d%s", c, len(args), cast))
	}
	if len(sets) == 0 {
		return "", nil
	}
	return `UPDATE flows.meter_shadows s SET ` + strings.Join(sets, ", ") + `
		FROM flows.meter_registry r WHERE r.id = s.id AND r.serial = $1 AND r.mode = 'passive'`, args
}
