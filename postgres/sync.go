package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// MeterByID returns the registry row of a meter. ENOTFOUND if none.
func (s *Store) MeterByID(ctx context.Context, id string) (*flows.Meter, error) {
	return s.meterWhere(ctx, "mr.id = $1", id)
}

// SyncerFrequencies returns the enabled syncers of meter_metrics and how
// often each runs.
func (s *Store) SyncerFrequencies(ctx context.Context) (map[string]flows.Frequency, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, run_frequency FROM flows.meter_metrics WHERE enabled`)
	if err != nil {
		return nil, translate(err, "meter metrics")
	}
	defer rows.Close()
	out := map[string]flows.Frequency{}
	for rows.Next() {
		var name, f string
		if err := rows.Scan(&name, &f); err != nil {
			return nil, err
		}
		out[name] = flows.Frequency(f)
	}
	return out, rows.Err()
}

// LastEventTime returns the newest stored event time of a meter (zero if none).
func (s *Store) LastEventTime(ctx context.Context, meterID string) (time.Time, error) {
	var t *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max("timestamp") FROM flows.meter_event_log WHERE meter_id = $1`, meterID).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, translate(err, "event log")
	}
	return t.UTC(), nil
}

// LeaseMeter takes a meter's sync lease and returns the meter in the same
// statement (a sync is mostly round trips to the database). It returns
// false when another owner holds the lease (an owner that is a node alone,
// host:pid — its on-demand syncs — may take a meter its node's group jobs
// are reading); ENOTFOUND when the meter is gone.
func (s *Store) LeaseMeter(ctx context.Context, meterID, owner string, ttl time.Duration) (*flows.Meter, bool, error) {
	m, err := scanMeter(s.pool.QueryRow(ctx, `
		WITH l AS (
			INSERT INTO flows.meter_sync_state (meter_id, lease_owner, lease_until, lease_holders) VALUES ($1, $2, now() + $3::interval, 1)
			ON CONFLICT (meter_id) DO UPDATE SET `+leaseTaken("$2", "$3")+`, `+wantMet("$2")+`
			WHERE (meter_sync_state.lease_until IS NULL OR meter_sync_state.lease_until < now() OR meter_sync_state.lease_owner = $2
			       OR (strpos($2, '/') = 0 AND `+sameNodeGroup("meter_sync_state", "$2")+`))
			  AND `+pushFree("meter_sync_state", "$2")+`
			RETURNING meter_id)
		SELECT `+meterColumns+` FROM flows.meter_registry mr LEFT JOIN flows.escos e ON e.id = mr.esco
		WHERE mr.id = $1 AND EXISTS (SELECT 1 FROM l)`, meterID, owner, ttl.String()))
	if err == nil {
		return m, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, translate(err, "sync lease")
	}
	if _, err := s.MeterByID(ctx, meterID); err != nil {
		return nil, false, err // gone (ENOTFOUND) or unreadable
	}
	return nil, false, nil
}

// sameNodeGroup is SQL true when the sync lease of row st is held by a
// group job (host:pid/group-frequency) of owner's node other than owner:
// another frequency's group, whose reads this node's per-meter turn orders
// with owner's.
func sameNodeGroup(st, owner string) string {
	// Compared by parts, not LIKE: a '_' in a host name is not a wildcard.
	return fmt.Sprintf(`(%[1]s.lease_owner <> %[2]s AND split_part(%[1]s.lease_owner, '/', 1) = split_part(%[2]s, '/', 1)
		AND starts_with(split_part(%[1]s.lease_owner, '/', 2), 'group-'))`, st, owner)
}

// pushFree is SQL true when no other node holds the push lease of the
// meter_sync_state row st (migration 0023) against the lease owner named
// by the parameter owner, and no other node gave the meter back within its
// gap (quietFree): a node's own pushes and syncs share its per-meter turn,
// another node's do not.
func pushFree(st, owner string) string {
	return fmt.Sprintf(`(%[1]s.push_until IS NULL OR %[1]s.push_until < now() OR split_part(%[1]s.push_owner, '/', 1) = split_part(%[2]s, '/', 1))`, st, owner) +
		" AND " + quietFree(st, owner) + " AND " + wantFree(st, owner)
}

// wantFree is SQL true unless another node than owner's waits for the
// meter of row st for operator work (a push, an on-demand sync; migration
// 0025): it goes next.
func wantFree(st, owner string) string {
	return fmt.Sprintf(`(%[1]s.wanted_until IS NULL OR %[1]s.wanted_until < now() OR split_part(%[1]s.wanted_by, '/', 1) = split_part(%[2]s, '/', 1))`, st, owner)
}

// wantMet is the SET list that drops the want of owner's node (the
// parameter named) as it takes the meter.
func wantMet(owner string) string {
	return fmt.Sprintf(`wanted_by = CASE WHEN split_part(meter_sync_state.wanted_by, '/', 1) = split_part(%[1]s, '/', 1) THEN NULL ELSE meter_sync_state.wanted_by END,
			wanted_until = CASE WHEN split_part(meter_sync_state.wanted_by, '/', 1) = split_part(%[1]s, '/', 1) THEN NULL ELSE meter_sync_state.wanted_until END`, owner)
}

// wantFor is how long a refused push's want keeps other nodes off the
// meter without a retry renewing it: several of the pusher's and the
// mediator's retries (250 ms), so a node that stopped waiting holds
// nobody up for long.
const wantFor = "2 seconds"

// quietFree is SQL true unless another node than owner's gave the meter
// of row st back less than its minimum gap ago (migration 0025): that
// node's last request may have ended a moment before, and this node's turn
// does not know of it.
func quietFree(st, owner string) string {
	return fmt.Sprintf(`(%[1]s.quiet_until IS NULL OR %[1]s.quiet_until <= now() OR split_part(%[1]s.released_by, '/', 1) = split_part(%[2]s, '/', 1))`, st, owner)
}

// leaseTaken is the SET list of a sync lease taken by owner for ttl (the
// parameters named). A live lease of the node's that owner may share
// (another frequency's group, the node's on-demand sync: the WHERE says
// who may) is shared, not overwritten: its first owner stays, so the same
// frequency's other groups still see it held, and the holders are
// counted, so the lease ends when the last of them gives it back, not
// while another still reads the meter.
func leaseTaken(owner, ttl string) string {
	const live = `(meter_sync_state.lease_until IS NOT NULL AND meter_sync_state.lease_until >= now())`
	return fmt.Sprintf(`lease_owner = CASE WHEN %[3]s THEN meter_sync_state.lease_owner ELSE %[1]s END,
			lease_until = CASE WHEN %[3]s THEN greatest(meter_sync_state.lease_until, now() + %[2]s::interval) ELSE now() + %[2]s::interval END,
			lease_holders = CASE WHEN %[3]s THEN meter_sync_state.lease_holders + 1 ELSE 1 END`, owner, ttl, live)
}

// leaseGivenBack is the SET list of owner (the parameter named; empty for
// none) giving back its share of a sync lease of its node: the last
// holder ends the lease, and the meter rests for the gap before another
// node takes it.
func (s *Store) leaseGivenBack(owner string) string {
	mine := fmt.Sprintf(`(%[1]s <> '' AND split_part(meter_sync_state.lease_owner, '/', 1) = split_part(%[1]s, '/', 1))`, owner)
	last := mine + ` AND meter_sync_state.lease_holders <= 1`
	return fmt.Sprintf(`lease_holders = CASE WHEN %[1]s THEN greatest(meter_sync_state.lease_holders - 1, 0) ELSE meter_sync_state.lease_holders END,
			lease_owner = CASE WHEN %[2]s THEN NULL ELSE meter_sync_state.lease_owner END,
			lease_until = CASE WHEN %[2]s THEN NULL ELSE meter_sync_state.lease_until END,
			quiet_until = CASE WHEN %[2]s THEN %[3]s ELSE meter_sync_state.quiet_until END,
			released_by = CASE WHEN %[2]s THEN %[4]s ELSE meter_sync_state.released_by END`, mine, last, s.restUntil(), owner)
}

// released is the SET list that records owner (the parameter named) giving
// a meter back: the meter rests for the store's gap before another node
// takes it.
func (s *Store) released(owner string) string {
	return fmt.Sprintf(`quiet_until = %s, released_by = %s`, s.restUntil(), owner)
}

// restUntil is SQL for when a meter given back now has rested its gap.
func (s *Store) restUntil() string {
	return fmt.Sprintf(`now() + make_interval(secs => %g)`, s.gap.Seconds())
}

// LeaseMeterForPush takes a meter's push lease for owner (host:pid/push)
// for ttl, or renews it, unless another node holds the meter's sync lease
// (or its push lease), gave it back less than its gap ago, or waits to
// push to it first: false then, and owner's node wants the meter next (no
// other node's sync or push takes it while owner keeps asking). A node's
// own sync lease does not stop it — the node's per-meter turn orders its
// pushes and syncs.
func (s *Store) LeaseMeterForPush(ctx context.Context, meterID, owner string, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO flows.meter_sync_state (meter_id, push_owner, push_until)
		SELECT id, $2, now() + $3::interval FROM flows.meter_registry WHERE id = $1
		ON CONFLICT (meter_id) DO UPDATE SET push_owner = $2, push_until = now() + $3::interval, `+wantMet("$2")+`
		WHERE (meter_sync_state.push_until IS NULL OR meter_sync_state.push_until < now() OR meter_sync_state.push_owner = $2)
		  AND (meter_sync_state.lease_until IS NULL OR meter_sync_state.lease_until < now()
		       OR split_part(meter_sync_state.lease_owner, '/', 1) = split_part($2, '/', 1))
		  AND `+quietFree("meter_sync_state", "$2")+` AND `+wantFree("meter_sync_state", "$2"), meterID, owner, ttl.String())
	if err != nil {
		return false, translate(err, "push lease")
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	// Refused: want the meter next (no want when the refusal was this
	// node's other push holder — its mediator — whose turn orders the
	// two).
	return false, s.want(ctx, meterID, owner)
}

// WantMeter records that owner's node (an on-demand sync refused a
// meter's lease) wants the meter next, as a refused push does: while the
// want is fresh (wantFor, renewed by asking again) no other node's sync
// or push takes the meter, and a node holding it for background reads
// hands it over after its request in progress (WantedFrom). Nothing is
// recorded when no other node holds the meter or rests it, or another
// node wanted it first. ENOTFOUND when the meter is gone.
func (s *Store) WantMeter(ctx context.Context, meterID, owner string) error {
	return s.want(ctx, meterID, owner)
}

// want records owner's node's want of a meter another node holds (its
// sync or push lease) or gave back within its gap, unless another node
// wanted it first.
func (s *Store) want(ctx context.Context, meterID, owner string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE flows.meter_sync_state SET wanted_by = $2, wanted_until = now() + interval '`+wantFor+`'
		WHERE meter_id = $1 AND (wanted_until IS NULL OR wanted_until < now() OR split_part(wanted_by, '/', 1) = split_part($2, '/', 1))
		  AND ((push_until >= now() AND split_part(push_owner, '/', 1) <> split_part($2, '/', 1))
		       OR (lease_until >= now() AND split_part(lease_owner, '/', 1) <> split_part($2, '/', 1))
		       OR (quiet_until > now() AND split_part(released_by, '/', 1) <> split_part($2, '/', 1)))`, meterID, owner)
	if err != nil {
		return translate(err, "meter want")
	}
	if tag.RowsAffected() == 0 {
		// No want renewed (the common retry renews one): the meter may be
		// gone.
		if _, err := s.MeterByID(ctx, meterID); err != nil {
			return err // gone (ENOTFOUND) or unreadable
		}
	}
	return nil
}

// WantedFrom returns the meters whose sync lease node (host:pid) holds
// and another node wants (WantMeter, a refused push): operator work
// waiting for this node to hand them over. It reads the live wants by
// their index (migration 0027), not the fleet.
func (s *Store) WantedFrom(ctx context.Context, node string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT meter_id::text FROM flows.meter_sync_state
		WHERE wanted_until >= now() AND split_part(wanted_by, '/', 1) <> split_part($1, '/', 1)
		  AND lease_until >= now() AND split_part(lease_owner, '/', 1) = split_part($1, '/', 1)`, node)
	if err != nil {
		return nil, translate(err, "meter wants")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, translate(err, "meter wants")
}

// ExtendPushLeases renews owner's push leases of meters for ttl and
// returns the meters it renewed (a lease that had expired and been taken
// by another node is not).
func (s *Store) ExtendPushLeases(ctx context.Context, meterIDs []string, owner string, ttl time.Duration) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `UPDATE flows.meter_sync_state SET push_until = now() + $3::interval
		WHERE meter_id = ANY($1::uuid[]) AND push_owner = $2 RETURNING meter_id::text`, meterIDs, owner, ttl.String())
	if err != nil {
		return nil, translate(err, "push lease")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err, "push lease")
	}
	renewed := make(map[string]bool, len(ids))
	for _, id := range ids {
		renewed[id] = true
	}
	return renewed, nil
}

// ReleasePushLease gives a push lease back.
func (s *Store) ReleasePushLease(ctx context.Context, meterID, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_sync_state SET push_owner = NULL, push_until = NULL, `+s.released("$2")+`
		WHERE meter_id = $1 AND push_owner = $2`, meterID, owner)
	return translate(err, "push lease")
}

// ReleaseSyncLease gives a lease back.
func (s *Store) ReleaseSyncLease(ctx context.Context, meterID, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_sync_state SET `+s.leaseGivenBack("$2")+`
		WHERE meter_id = $1 AND split_part(lease_owner, '/', 1) = split_part($2, '/', 1)`, meterID, owner)
	return translate(err, "sync lease")
}

// ApplySync writes one sync's results in one transaction: the shadow
// values (history through the triggers), health, freshness, the registry
// fields that changed, new events, the sync state, and — when the store
// replicates — an outbox entry for replica databases. A failure keeps the
// values that were read and marks the meter unhealthy (csq NULL only when
// it was unreachable). The sync lease held by owner ("" for none) is
// released with the result. A result that cannot be stored at all is
// recorded as the meter's failed sync and named in the error (ECONFLICT
// for a clash, ENOTFOUND for a meter deleted meanwhile).
func (s *Store) ApplySync(ctx context.Context, r flows.SyncResult, freq, owner string) error {
	skipped, err := s.ApplySyncs(ctx, []flows.SyncResult{r}, freq, owner)
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		return sk.Err
	}
	return nil
}

// ApplySyncs writes several meters' results, sent as one batch in one
// transaction: a group of syncs costs one round trip, not one per meter.
// One meter's result never holds back the others': values it reported
// that cannot be stored are dropped (and named in its health), and when
// the batch fails all the same (a serial another meter has, a meter
// deleted meanwhile) each result is written in a transaction of its own,
// and those that still fail are returned, with the meter's sync counted
// as failed where the meter still exists.
func (s *Store) ApplySyncs(ctx context.Context, rs []flows.SyncResult, freq, owner string) ([]flows.SkippedSync, error) {
	for i := range rs {
		rs[i].Invalid = append(rs[i].Invalid, rs[i].Shadow.DropInvalid()...)
	}
	if err := s.applyBatch(ctx, rs, freq, owner); err == nil || len(rs) == 0 {
		return nil, err
	} else if flows.ErrorCode(err) == flows.EUNAVAILABLE || ctx.Err() != nil {
		return nil, err // the database, not one meter
	}
	var skipped []flows.SkippedSync
	for _, r := range rs {
		err := s.applyBatch(ctx, []flows.SyncResult{r}, freq, owner)
		if err == nil {
			continue
		}
		skipped = append(skipped, flows.SkippedSync{MeterID: r.MeterID, Err: err})
		failed := flows.SyncResult{MeterID: r.MeterID, At: r.At, Reached: r.Reached, TouchHealth: true,
			Invalid: []string{"the sync result: " + flows.ErrorMessage(err)}}
		if ferr := s.applyBatch(ctx, []flows.SyncResult{failed}, freq, owner); ferr != nil {
			if _, gone := s.MeterByID(ctx, r.MeterID); flows.ErrorCode(gone) == flows.ENOTFOUND {
				continue // deleted while its group ran: nothing to record
			}
			return skipped, ferr
		}
	}
	return skipped, nil
}

func (s *Store) applyBatch(ctx context.Context, rs []flows.SyncResult, freq, owner string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rs, err := dropOverwritten(ctx, tx, rs)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		// What meters report is not an operator's request (see the
		// tariffs_future trigger); the batch's credit forecasts are
		// refreshed once, at its end (migration 0035), not a balance at a
		// time.
		b.Queue(`SELECT set_config('flows.writer', 'sync', true), set_config('flows.defer_forecast', 'on', true)`)
		var balances []string
		for _, r := range rs {
			if err := s.queueObservation(b, r); err != nil {
				return err
			}
			if r.Shadow.Balance != nil || r.Shadow.EmergencyCredit != nil {
				balances = append(balances, r.MeterID)
			}
			// The syncer kept out what it could not store (and named it).
			queueProfile(b, r.MeterID, r.Profile, r.ProfileHoles, s.now())
			queueThreePhase(b, r.MeterID, r.ThreePhaseIntervals, r.ProfileHoles, s.now())
			s.queueSyncState(b, r, freq, owner)
		}
		if len(balances) > 0 {
			b.Queue(`SELECT flows.refresh_credit_forecasts($1::uuid[])`, balances)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return translate(err, "sync results")
		}
		return nil
	})
}

// dropOverwritten returns rs without the value groups each result read
// before the meter's stored observation of them (synced_at): a push
// between two requests of a sync — a top-up's balance read back, a tariff
// — was recorded after the sync read that group, and the sync must not
// put the older value back (in the shadow, its history or the replicas'
// outbox). The meters' shadow rows stay locked to the transaction's end,
// so no push records in between.
func dropOverwritten(ctx context.Context, tx pgx.Tx, rs []flows.SyncResult) ([]flows.SyncResult, error) {
	var ids []string
	for _, r := range rs {
		if len(r.ReadAt) > 0 {
			ids = append(ids, r.MeterID)
		}
	}
	if len(ids) == 0 {
		return rs, nil
	}
	rows, err := tx.Query(ctx, `SELECT id::text, synced_at FROM flows.meter_shadows WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, translate(err, "sync results")
	}
	stored := map[string]map[string]time.Time{}
	for rows.Next() {
		var id string
		var at map[string]time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, translate(err, "sync results")
		}
		stored[id] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "sync results")
	}
	out := make([]flows.SyncResult, len(rs))
	for i, r := range rs {
		out[i] = r
		for g, read := range r.ReadAt {
			if t, ok := stored[r.MeterID][g]; ok && t.After(read) && out[i].Shadow.DropGroup(g) {
				out[i].Groups = slices.DeleteFunc(slices.Clone(out[i].Groups), func(x string) bool { return x == g })
			}
		}
	}
	return out, nil
}

// ApplyObservation records what a meter reported outside a scheduled
// sync (a top-up's confirmed balance, a tariff's read-back, a clock or
// flag read back) exactly as a sync's values are: history through the
// triggers, the value groups' synced_at, health, the registry fields, the
// replica outbox. The meter's sync state is left alone. ENOTFOUND when
// the meter is gone; EINVALID naming the field for a value that cannot
// be stored (nothing is written then). An observation with no time is
// recorded at the store's now.
func (s *Store) ApplyObservation(ctx context.Context, r flows.SyncResult) error {
	if err := r.Shadow.Validate(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('flows.writer', 'sync', true)`)
	if err := s.queueObservation(b, r); err != nil {
		return err
	}
	b.Queue(`SELECT 1 FROM flows.meter_shadows WHERE id = $1`, r.MeterID)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		for range b.Len() - 1 {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return translate(err, "meter observation")
			}
		}
		var one int
		if err := br.QueryRow().Scan(&one); err != nil {
			br.Close()
			return flows.Errorf(flows.ENOTFOUND, "meter %s not found", r.MeterID)
		}
		return translate(br.Close(), "meter observation")
	})
}

// queueObservation adds the shadow, registry and event writes of one
// result to a batch (and its outbox entry when the store replicates).
func (s *Store) queueObservation(b *pgx.Batch, r flows.SyncResult) error {
	// PostgreSQL keeps microseconds: the primary's rows and the outbox's
	// copy (which a replica parses, rounding) must carry the same instant.
	r.At = r.At.Truncate(time.Microsecond)
	u := r.Shadow
	u.At = r.At
	if r.TouchHealth {
		h, details, _ := r.Verdict()
		if r.Failure != "" && !r.Reached {
			// Not a word from the meter: csq NULL marks the offline
			// period. A meter that answered some reads before the link
			// failed keeps the signal it reported.
			u.ClearCSQ, u.CSQ, u.NetworkOperator = true, nil, nil
		}
		u.Health, u.HealthDetails = &h, &details
	}
	if sql, args := shadowUpdateSQL(r.MeterID, u, r.Groups, r.ReadAt, s.now()); sql != "" {
		b.Queue(sql, args...)
		if s.replicate {
			changes := shadowChanges(u)
			changes["updated_at"] = r.At.UTC()
			js, err := json.Marshal(changes)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO flows.shadow_outbox (serial, changes) SELECT serial, $2 FROM flows.meter_registry WHERE id = $1`, r.MeterID, js)
		}
	}
	queueRegistry(b, r.MeterID, r.Registry)
	queueEvents(b, r.MeterID, r.Events)
	return nil
}

// queueRegistry writes the registry fields a meter reported; only changed
// columns are written, so updated_at means a change.
func queueRegistry(b *pgx.Batch, meterID string, reg flows.RegistryUpdate) {
	for col, v := range map[string]any{"hardware": reg.Hardware, "serial": reg.Serial, "firmware_version": reg.FirmwareVersion,
		"prepay_enabled": reg.PrepayEnabled, "daylight_savings_correction_enabled": reg.DaylightSavingsCorrectionEnabled} {
		if !isNilPtr(v) {
			b.Queue(`UPDATE flows.meter_registry SET `+col+` = $2 WHERE id = $1 AND `+col+` IS DISTINCT FROM $2`, meterID, v)
		}
	}
}

// queueEvents stores new event-log entries exactly once.
func queueEvents(b *pgx.Batch, meterID string, events []flows.MeterEvent) {
	if len(events) == 0 {
		return
	}
	ts := make([]time.Time, len(events))
	types := make([]int32, len(events))
	sets := make([]int32, len(events))
	for i, e := range events {
		ts[i], types[i], sets[i] = e.Timestamp, int32(e.EventType), int32(e.EventSet)
	}
	b.Queue(`INSERT INTO flows.meter_event_log (meter_id, "timestamp", event_type, event_set)
		SELECT $1, t, e, s FROM unnest($2::timestamptz[], $3::int[], $4::int[]) AS x(t, e, s)
		ON CONFLICT (meter_id, "timestamp", event_type) DO NOTHING`, meterID, ts, types, sets)
	// A supply event among them: the meter's self-disconnections derived
	// again from the oldest (migration 0031).
	b.Queue(`SELECT flows.detect_self_disconnections($1, min(t)) FROM unnest($2::timestamptz[], $3::int[]) AS x(t, e)
		WHERE e IN (SELECT event_type FROM flows.supply_event_types) HAVING count(*) > 0`, meterID, ts, types)
}

// queueSyncState records the sync in meter_sync_state: attempts, success
// or one more failure in a row, the frequency's last run, and the lease
// released (the meter resting for the gap before another node takes it).
func (s *Store) queueSyncState(b *pgx.Batch, r flows.SyncResult, freq, owner string) {
	_, details, ok := r.Verdict()
	lastError := ""
	if !ok {
		lastError = details
	}
	b.Queue(`
		INSERT INTO flows.meter_sync_state (meter_id, last_attempt_at, last_success_at, consecutive_failures, last_error, syncs, last_run, last_synced_by)
		VALUES ($1, $2, CASE WHEN $3 THEN $2::timestamptz END, CASE WHEN $3 THEN 0 ELSE 1 END, NULLIF($4, ''), 1, jsonb_build_object($5::text, $2::timestamptz), NULLIF(split_part($6, '/', 1), ''))
		ON CONFLICT (meter_id) DO UPDATE SET
			last_synced_by = coalesce(NULLIF(split_part($6, '/', 1), ''), meter_sync_state.last_synced_by),
			-- The lease goes back with the result.
			`+s.leaseGivenBack("$6")+`,
			last_attempt_at = $2,
			last_success_at = CASE WHEN $3 THEN $2::timestamptz ELSE meter_sync_state.last_success_at END,
			consecutive_failures = CASE WHEN $3 THEN 0 ELSE meter_sync_state.consecutive_failures + 1 END,
			last_error = NULLIF($4, ''),
			syncs = meter_sync_state.syncs + 1,
			last_run = meter_sync_state.last_run || jsonb_build_object($5::text, $2::timestamptz)`,
		r.MeterID, r.At.UTC(), ok, lastError, freq, owner)
}

func isNilPtr(v any) bool {
	switch p := v.(type) {
	case *string:
		return p == nil
	case *bool:
		return p == nil
	}
	return v == nil
}

// DueSyncs lists active meters (with an address) whose sync at frequency f
// falls due by horizon: each meter has a fixed slot within every period,
// derived from its id, so a fleet's work is spread evenly over the period.
// A meter that missed its previous slot too (never synced, or the process
// was down: no read since half a period before that slot) is due at once.
// A sync in the half period before a slot stands for it (a meter caught up
// just before its slot is not read twice, in this period or, the slot
// being seconds after the read, the next); values stay within StaleAfter.
func (s *Store) DueSyncs(ctx context.Context, f flows.Frequency, now, horizon time.Time) ([]flows.DueSync, error) {
	secs := int64(f.Interval() / time.Second)
	rows, err := s.pool.Query(ctx, `
		WITH m AS (
			SELECT r.id, coalesce(st.consecutive_failures, 0) AS failures,
			       (st.last_run ->> $1)::timestamptz AS last_run,
			       `+slotSQL+` AS slot
			FROM flows.meter_registry r
			LEFT JOIN flows.meter_sync_state st ON st.meter_id = r.id
			WHERE r.mode = 'active' AND r.ip_address IS NOT NULL
		)
		SELECT id, slot, CASE WHEN last_run IS NULL OR last_run < slot - make_interval(secs => $2 * 3 / 2) THEN $3::timestamptz ELSE slot END, failures
		FROM m
		WHERE (last_run IS NULL OR last_run < slot - make_interval(secs => $2 / 2))
		  AND (slot <= $4 OR last_run IS NULL OR last_run < slot - make_interval(secs => $2 * 3 / 2))`,
		string(f), secs, now, horizon)
	if err != nil {
		return nil, translate(err, "due syncs")
	}
	defer rows.Close()
	var out []flows.DueSync
	for rows.Next() {
		var d flows.DueSync
		if err := rows.Scan(&d.MeterID, &d.Slot, &d.RunAt, &d.Failures); err != nil {
			return nil, err
		}
		if d.RunAt.Before(now) {
			d.RunAt = now
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SyncCount returns how many syncs a meter has had (for tests and ops).
func (s *Store) SyncCount(ctx context.Context, meterID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT syncs FROM flows.meter_sync_state WHERE meter_id = $1), 0)`, meterID).Scan(&n)
	return n, translate(err, "sync state")
}

// slotSQL is a meter's slot in the period of length $2 seconds containing
// $3: the period start plus an offset derived from the meter id, so a
// fleet's syncs are spread evenly over the period.
const slotSQL = `to_timestamp(floor(extract(epoch FROM $3::timestamptz) / $2) * $2 + (abs(hashtext(r.id::text)::bigint) % $2))`

// LeaseDueGroup leases, in one statement, the meters still due at
// frequency f whose slot falls in the minute starting at minute (failing:
// only meters that failed flows.FailingAfter times or more in a row, or
// only the others), not synced at or after since (the group's own
// earlier chunks), at most limit of them (0: all), and returns them with
// how many due meters it left (held by someone else, beyond the limit, or
// waiting for the slot's minute: before it, only meters that missed their
// previous slot are leased) and how many of those are waiting. Meters
// leased by anyone, this owner's other group jobs included, are left out.
func (s *Store) LeaseDueGroup(ctx context.Context, f flows.Frequency, minute, now, since time.Time, failing bool, owner string, ttl time.Duration, limit int) (_ []flows.Meter, left, waiting int, _ error) {
	secs := int64(f.Interval() / time.Second)
	rows, err := s.pool.Query(ctx, `
		WITH m AS (
			SELECT r.id, `+slotSQL+` AS slot, (st.last_run ->> $1)::timestamptz AS last_run,
			       coalesce(st.consecutive_failures, 0) >= $8 AS failing,
			       -- Not re-entrant: a meter this process's other group job of
			       -- the frequency is reading is not free (at a period's turn
			       -- the new period's groups overlap the old one's reads, and a
			       -- meter still being read counts as due); one of another
			       -- frequency is (sameNodeGroup).
			       coalesce((st.lease_until IS NULL OR st.lease_until < now() OR `+sameNodeGroup("st", "$6")+`) AND `+pushFree("st", "$6")+`, false) AS free
			FROM flows.meter_registry r LEFT JOIN flows.meter_sync_state st ON st.meter_id = r.id
			WHERE r.mode = 'active' AND r.ip_address IS NOT NULL),
		-- ready: due now, not only at the slot. A group runs early when
		-- one of its meters missed its previous slot (never synced, or the
		-- process was down: DueSyncs' "at once"); its other meters, read
		-- recently but more than half a period before their slot (the
		-- first wave, the last period), wait for the slot's minute:
		-- leased early they were read twice within minutes.
		due AS (
			SELECT id, free, (last_run IS NULL OR last_run < slot - make_interval(secs => $2 * 3 / 2) OR $4 <= $3) AS ready
			FROM m WHERE date_trunc('minute', slot) = $4 AND (last_run IS NULL OR last_run < least(slot - make_interval(secs => $2 / 2), $10))
			  AND failing = $5),
		l AS (
			-- The limit among the meters free to lease (those held by
			-- another sync would otherwise fill it and stall the group).
			INSERT INTO flows.meter_sync_state (meter_id, lease_owner, lease_until, lease_holders)
			SELECT id, $6, now() + $7::interval, 1 FROM due WHERE free AND ready ORDER BY id LIMIT nullif($9::int, 0)
			ON CONFLICT (meter_id) DO UPDATE SET `+leaseTaken("$6", "$7")+`, `+wantMet("$6")+`
			WHERE (meter_sync_state.lease_until IS NULL OR meter_sync_state.lease_until < now() OR `+sameNodeGroup("meter_sync_state", "$6")+`)
			  AND `+pushFree("meter_sync_state", "$6")+`
			RETURNING meter_id)
		SELECT `+meterColumns+`, (SELECT count(*) FROM due), (SELECT count(*) FROM due WHERE NOT ready) FROM flows.meter_registry mr LEFT JOIN flows.escos e ON e.id = mr.esco
		WHERE mr.id IN (SELECT meter_id FROM l)
		UNION ALL SELECT NULL, '', '', NULL, 0, '', 'active', NULL, '', false, false, NULL, '', now(), now(), (SELECT count(*) FROM due),
			(SELECT count(*) FROM due WHERE NOT ready)
		WHERE NOT EXISTS (SELECT 1 FROM l)`,
		string(f), secs, now, minute.UTC(), failing, owner, ttl.String(), flows.FailingAfter, limit, since.UTC())
	if err != nil {
		return nil, 0, 0, translate(err, "lease sync group")
	}
	defer rows.Close()
	var out []flows.Meter
	due := 0
	for rows.Next() {
		var m flows.Meter
		var id, ip *string
		var mode string
		if err := rows.Scan(&id, &m.Serial, &m.Name, &ip, &m.Port, &m.Hardware, &mode, &m.ESCO, &m.ESCOCode, &m.SingleMeterApp,
			&m.DaylightSavingsCorrectionEnabled, &m.PrepayEnabled, &m.FirmwareVersion, &m.CreatedAt, &m.UpdatedAt, &due, &waiting); err != nil {
			return nil, 0, 0, err
		}
		if id == nil {
			continue // no meter leased: the row only carries the count
		}
		m.ID, m.Mode = *id, flows.Mode(mode)
		if ip != nil {
			if a, err := netip.ParseAddr(*ip); err == nil {
				m.IPAddress = &a
			}
		}
		out = append(out, m)
	}
	// Due meters held by another sync (another frequency, or an
	// on-demand sync), or beyond the limit, are left for a later attempt.
	return out, due - len(out), waiting, rows.Err()
}

// SyncedMeters counts the meters scheduled syncs read: active, with an
// address (DueSyncs' meters).
func (s *Store) SyncedMeters(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_registry WHERE mode = 'active' AND ip_address IS NOT NULL`).Scan(&n)
	return n, translate(err, "synced meters")
}
