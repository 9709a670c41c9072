package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/postgres"
)

// Sync and push leases across nodes (owner host:pid[/holder]): a node's
// own syncs and pushes share a meter, another node's are kept out — by
// LeaseMeter, by LeaseDueGroup and by LeaseMeterForPush — until the lease
// is given back or runs out.
func TestPushLeaseKeepsOtherNodesOut(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580831", Hardware: "C1.w", IPAddress: "127.0.0.9", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	lease := func(owner string) bool { t.Helper(); return leased(t, s, m.ID, owner) }
	push := func(owner string, ttl time.Duration) bool { t.Helper(); return pushLeased(t, s, m.ID, owner, ttl) }
	// Node a syncs: node b may not push, a's pusher may.
	if !lease("a:1") {
		t.Fatal("a free meter could not be leased")
	}
	if !push("a:1/push", time.Minute) {
		t.Error("node a's pusher could not take a meter its own engine is syncing")
	}
	if push("b:2/push", time.Minute) {
		t.Error("node b took the push lease of a meter node a is syncing")
	}
	// b stops asking: its want (TestWaitingPushGoesNext) lapses.
	time.Sleep(2100 * time.Millisecond)
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1"); err != nil {
		t.Fatal(err)
	}
	// Node a pushes: b's syncs are kept out, one meter at a time or by the
	// group; a's own backfill is not.
	if lease("b:2") {
		t.Error("node b leased a meter node a is pushing to")
	}
	now := time.Now().UTC()
	minute := slotMinute(t, s, m.ID, 3600, now)
	group := func(owner string) int {
		t.Helper()
		got, _, _, err := s.LeaseDueGroup(ctx, flows.Hourly, minute, now, time.Time{}, false, owner, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if n := group("b:2"); n != 0 {
		t.Errorf("node b's group leased %d meters node a is pushing to", n)
	}
	if !lease("a:1/backfill") {
		t.Error("node a's backfill could not lease a meter its own pusher holds")
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1/backfill"); err != nil {
		t.Fatal(err)
	}
	if n := group("a:1"); n != 1 {
		t.Errorf("node a's own group leased %d meters, want its pushed meter", n)
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1"); err != nil {
		t.Fatal(err)
	}
	// Renewed while a pushes; given back, b may have it.
	renewed, err := s.ExtendPushLeases(ctx, []string{m.ID}, "a:1/push", time.Minute)
	if err != nil || !renewed[m.ID] {
		t.Errorf("renewing a's push lease: %v %v", renewed, err)
	}
	if renewed, _ := s.ExtendPushLeases(ctx, []string{m.ID}, "b:2/push", time.Minute); renewed[m.ID] {
		t.Error("b renewed a's push lease")
	}
	if err := s.ReleasePushLease(ctx, m.ID, "a:1/push"); err != nil {
		t.Fatal(err)
	}
	if !lease("b:2") {
		t.Error("a push lease given back still keeps node b out")
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "b:2"); err != nil {
		t.Fatal(err)
	}
	// A dead node's push lease runs out.
	if !push("a:1/push", 50*time.Millisecond) {
		t.Fatal("push lease of a free meter")
	}
	time.Sleep(100 * time.Millisecond)
	if !lease("b:2") {
		t.Error("an expired push lease still keeps node b out")
	}
	if _, err := s.LeaseMeterForPush(ctx, "00000000-0000-0000-0000-000000000000", "a:1/push", time.Minute); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("push lease of no meter: %v, want ENOTFOUND", err)
	}
}

// A meter one node gives back rests for its gap before another node takes
// it (migration 0025): the first node's last request ended a moment
// before, and the second node's turn, in another process, does not know
// of it. Whichever lease is given back — with a sync's result, alone, or a
// push's — and whichever lease the other node asks for, one meter at a
// time, by the group or to push. The node that gave it back is not held.
func TestMeterRestsBeforeAnotherNodeTakesIt(t *testing.T) {
	t.Parallel()
	const gap = 400 * time.Millisecond
	s := newStore(t).WithMeterGap(gap)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580832", Hardware: "C1.w", IPAddress: "127.0.0.9", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	lease := func(owner string) bool { t.Helper(); return leased(t, s, m.ID, owner) }
	push := func(owner string) bool { t.Helper(); return pushLeased(t, s, m.ID, owner, time.Minute) }
	// rests says whether node b is kept out now and let in after the gap.
	rests := func(what string, take func() bool) {
		t.Helper()
		given := time.Now()
		if take() {
			t.Errorf("%s: another node took the meter %v after it was given back, within its %v gap", what, time.Since(given).Round(time.Millisecond), gap)
			return
		}
		time.Sleep(gap + 100*time.Millisecond)
		if !take() {
			t.Errorf("%s: the meter was still kept from another node %v after it was given back", what, time.Since(given).Round(time.Millisecond))
		}
	}

	// A's sync gives the meter back with its result.
	if !lease("a:1") {
		t.Fatal("a free meter could not be leased")
	}
	if err := s.ApplySync(ctx, flows.SyncResult{MeterID: m.ID, At: time.Now(), Reached: true, TouchHealth: true, Groups: []string{"csq"}}, string(flows.Hourly), "a:1"); err != nil {
		t.Fatal(err)
	}
	if !push("a:1/push") {
		t.Error("node a's pusher was kept from the meter its own sync gave back: its turn keeps the gap")
	}
	if err := s.ReleasePushLease(ctx, m.ID, "a:1/push"); err != nil {
		t.Fatal(err)
	}
	rests("after a's push", func() bool { return push("b:2/push") })
	if err := s.ReleasePushLease(ctx, m.ID, "b:2/push"); err != nil {
		t.Fatal(err)
	}
	// B's push gave it back: a's syncs, alone or by the group, wait. (The
	// daily group: the meter's hourly read was just now.)
	now := time.Now().UTC()
	minute := slotMinute(t, s, m.ID, 86400, now)
	rests("a's group after b's push", func() bool {
		got, left, _, err := s.LeaseDueGroup(ctx, flows.Daily, minute, now, time.Time{}, false, "a:1", time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 && left != 1 {
			t.Errorf("a's group left %d meters, want the resting one counted as left for later", left)
		}
		return len(got) == 1
	})
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1"); err != nil {
		t.Fatal(err)
	}
	rests("b's sync after a's released lease", func() bool { return lease("b:2") })
}

// A slot minute's group does not lease a meter another group job of the
// same process is reading: at a period's turn the new period's groups run
// while the old period's last reads are on their way, and a meter being
// read still counts as due. (The 100,000-meter run across an hour read
// 4,178 meters twice in one process before this.)
func TestGroupLeaseIsNotReentrant(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580833", Hardware: "C1.w", IPAddress: "127.0.0.10", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	minute := slotMinute(t, s, m.ID, 3600, now)
	group := func() (int, int) {
		t.Helper()
		got, left, _, err := s.LeaseDueGroup(ctx, flows.Hourly, minute, now, time.Time{}, false, "a:1/group-hourly", time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(got), left
	}
	if n, _ := group(); n != 1 {
		t.Fatalf("the first group job leased %d meters, want the never-read one", n)
	}
	if n, left := group(); n != 0 || left != 1 {
		t.Errorf("a second group job of the same process leased %d meters (%d left) while the first reads it; want 0, the meter left for later", n, left)
	}
	// Another node's group may not; another frequency's group of this
	// process may, and so may its on-demand sync (its turn orders the
	// reads; the operator asked), not its backfill.
	if got, _, _, err := s.LeaseDueGroup(ctx, flows.Hourly, minute, now, time.Time{}, false, "b:2/group-hourly", time.Minute, 0); err != nil || len(got) != 0 {
		t.Errorf("another node's group leased %d meters this process is reading (%v)", len(got), err)
	}
	if _, ok, err := s.LeaseMeter(ctx, m.ID, "a:1/backfill", time.Minute); err != nil || ok {
		t.Errorf("this process's backfill leased the meter its group is reading: %v %v", ok, err)
	}
	daily := slotMinute(t, s, m.ID, 86400, now)
	if got, _, _, err := s.LeaseDueGroup(ctx, flows.Daily, daily, now, time.Time{}, false, "a:1/group-daily", time.Minute, 0); err != nil || len(got) != 1 {
		t.Errorf("this process's daily group could not lease the meter its hourly group is reading: %d, %v", len(got), err)
	}
	if _, ok, err := s.LeaseMeter(ctx, m.ID, "a:1", time.Minute); err != nil || !ok {
		t.Errorf("this process's on-demand sync could not lease the meter: %v %v", ok, err)
	}
	// Shared, the lease still keeps the frequency's other groups out, and
	// lasts until the last holder gives it back: the first to finish does
	// not free the meter under the others' reads.
	if n, _ := group(); n != 0 {
		t.Errorf("a second hourly group leased the meter after the daily group shared it (%d)", n)
	}
	other := func() int {
		t.Helper()
		got, _, _, err := s.LeaseDueGroup(ctx, flows.Hourly, minute, now, time.Time{}, false, "b:2/group-hourly", time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	for _, holder := range []string{"a:1", "a:1/group-daily"} {
		if err := s.ReleaseSyncLease(ctx, m.ID, holder); err != nil {
			t.Fatal(err)
		}
		if n := other(); n != 0 {
			t.Errorf("with %s's share given back, another node leased the meter the hourly group still reads", holder)
		}
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1/group-hourly"); err != nil {
		t.Fatal(err)
	}
	if n, _ := group(); n != 1 {
		t.Errorf("given back by every holder, the meter was not leased again (%d)", n)
	}
}

// A push waiting for a meter another node holds goes next: while it keeps
// asking, the holding node's syncs and pushes do not take the meter again
// once they give it back, nor does a third node's push (the first to want
// it keeps the want); the want ends when it takes the meter or stops
// asking.
func TestWaitingPushGoesNext(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580834", Hardware: "C1.w", IPAddress: "127.0.0.11", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	lease := func(owner string) bool { t.Helper(); return leased(t, s, m.ID, owner) }
	push := func(owner string) bool { t.Helper(); return pushLeased(t, s, m.ID, owner, time.Minute) }
	if !lease("b:2") {
		t.Fatal("a free meter could not be leased")
	}
	if push("a:1/push") {
		t.Fatal("node a pushed to a meter node b is syncing")
	}
	if push("c:3/push") {
		t.Fatal("node c pushed to a meter node b is syncing")
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "b:2"); err != nil {
		t.Fatal(err)
	}
	// a wanted it first: b's pusher (the clock correction its sync
	// queued), b's next sync and c's push wait.
	if push("b:2/push") {
		t.Error("node b's pusher took the meter back while node a's push waited for it")
	}
	if lease("b:2") {
		t.Error("node b's sync took the meter back while node a's push waited for it")
	}
	if push("c:3/push") {
		t.Error("node c's push went before node a's, which wanted the meter first")
	}
	if !push("a:1/push") {
		t.Fatal("node a's waiting push could not take the given-back meter")
	}
	if err := s.ReleasePushLease(ctx, m.ID, "a:1/push"); err != nil {
		t.Fatal(err)
	}
	// Taken and given back: a wants nothing now; c, asking again, has it
	// and b, refused, waits next.
	if !push("c:3/push") {
		t.Error("node c could not take the meter after node a's push")
	}
	if push("b:2/push") {
		t.Error("node b pushed to a meter node c is pushing to")
	}
	if err := s.ReleasePushLease(ctx, m.ID, "c:3/push"); err != nil {
		t.Fatal(err)
	}
	if lease("a:1") {
		t.Error("node a's sync took the meter while node b's push waited for it")
	}
	// b stops asking: the want lapses and anyone may take the meter.
	time.Sleep(2100 * time.Millisecond)
	if !lease("a:1") {
		t.Error("a want nobody renews still keeps the meter")
	}
	if err := s.ReleaseSyncLease(ctx, m.ID, "a:1"); err != nil {
		t.Fatal(err)
	}
	// A push refused by its own node's other push holder (the node's
	// mediator) wants nothing: the node's turn orders the two, and other
	// nodes are not kept out for it once the meter is given back.
	if !push("a:1/mediator") {
		t.Fatal("a free meter could not be leased for the mediator")
	}
	if push("a:1/push") {
		t.Fatal("the push lease is exact-owner: a:1/push shared a:1/mediator's")
	}
	if err := s.ReleasePushLease(ctx, m.ID, "a:1/mediator"); err != nil {
		t.Fatal(err)
	}
	if !lease("b:2") {
		t.Error("node a's push, refused by its own mediator, kept node b out")
	}
}

// leased takes meterID's sync lease for owner for a minute.
func leased(t *testing.T, s *postgres.Store, meterID, owner string) bool {
	t.Helper()
	_, ok, err := s.LeaseMeter(context.Background(), meterID, owner, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// pushLeased takes meterID's push lease for owner for ttl.
func pushLeased(t *testing.T, s *postgres.Store, meterID, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.LeaseMeterForPush(context.Background(), meterID, owner, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// slotMinute is the minute of meterID's slot in the period of secs
// seconds containing now (the store's slot rule, for LeaseDueGroup).
func slotMinute(t *testing.T, s *postgres.Store, meterID string, secs int, now time.Time) time.Time {
	t.Helper()
	var minute time.Time
	if err := s.Pool().QueryRow(context.Background(), `SELECT date_trunc('minute', to_timestamp(floor(extract(epoch FROM $2::timestamptz) / $3) * $3
		+ (abs(hashtext($1::text)::bigint) % $3)))`, meterID, now, secs).Scan(&minute); err != nil {
		t.Fatal(err)
	}
	return minute
}

// An on-demand sync refused a meter another node holds wants it as a
// refused push does, and the holding node, asking which of its meters are
// wanted, is told — no other node is, and nothing is wanted of a meter
// nobody else holds.
func TestWantedMeterIsNamedToItsHolder(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var ids []string
	for i, serial := range []string{"EML2137580835", "EML2137580836"} {
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: serial, Hardware: "C1.w", IPAddress: fmt.Sprintf("127.0.0.%d", 12+i), Port: 8080})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	wanted := func(node string) []string {
		t.Helper()
		got, err := s.WantedFrom(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// b's group holds both; a wants the first for an on-demand sync.
	for _, id := range ids {
		if !leased(t, s, id, "b:2/group-hourly") {
			t.Fatal("a free meter could not be leased")
		}
	}
	if got := wanted("b:2"); len(got) != 0 {
		t.Fatalf("meters wanted before anyone asked: %v", got)
	}
	if leased(t, s, ids[0], "a:1") {
		t.Fatal("node a's on-demand sync took a meter node b's group is reading")
	}
	if err := s.WantMeter(ctx, ids[0], "a:1"); err != nil {
		t.Fatal(err)
	}
	if got := wanted("b:2"); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("node b is told %v is wanted, want only %s", got, ids[0])
	}
	if got := wanted("a:1"); len(got) != 0 {
		t.Errorf("node a, which holds nothing, is told %v is wanted", got)
	}
	// The want keeps other nodes out as a push's does.
	if pushLeased(t, s, ids[0], "c:3/push", time.Minute) {
		t.Error("node c pushed ahead of node a's waiting on-demand sync")
	}
	// Handed over: a takes it, and nothing is wanted any more.
	if err := s.ReleaseSyncLease(ctx, ids[0], "b:2/group-hourly"); err != nil {
		t.Fatal(err)
	}
	if !leased(t, s, ids[0], "a:1") {
		t.Fatal("node a could not take the meter node b handed over")
	}
	if got := wanted("b:2"); len(got) != 0 {
		t.Errorf("after the handover node b is still told %v is wanted", got)
	}
	// A node's own holders want nothing of each other (its turn orders
	// them), and a meter nobody holds is not wanted.
	if err := s.WantMeter(ctx, ids[1], "b:2"); err != nil {
		t.Fatal(err)
	}
	if got := wanted("b:2"); len(got) != 0 {
		t.Errorf("node b's own on-demand sync made %v wanted", got)
	}
	if err := s.WantMeter(ctx, "00000000-0000-0000-0000-000000000000", "a:1"); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("wanting an unknown meter: %v, want ENOTFOUND", err)
	}
}
