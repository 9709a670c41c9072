package main_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// flows serve refuses a mediator open to the network without mutual TLS,
// saying which flags would do; --grpc-insecure serves it, with a warning.
func TestServeMediatorRefusesOpenAddress(t *testing.T) {
	url := pgtest.NewDB(t)
	out, err := exec.Command(flowsBin, "serve", "--components", "mediator", "--grpc", "0.0.0.0:0", "--database-url", url).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("serve on 0.0.0.0 without TLS: %v, want a usage error (exit 2)\n%s", err, out)
	}
	for _, want := range []string{"flows: --grpc: 0.0.0.0:0 is not a loopback address", "--grpc-cert, --grpc-key and --grpc-ca", "--grpc-insecure"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}

	_, out2 := startServe(t, "--components", "mediator", "--grpc", "0.0.0.0:0", "--grpc-insecure", "--database-url", url)
	if s := out2.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "anyone who can reach") || !strings.Contains(s, "prepay_token_send included") {
		t.Errorf("no warning that the mediator is open:\n%s", s)
	}
}

// startServe starts flows serve with args and waits until it says it is
// serving; it returns the process and its output so far and to come.
func startServe(t *testing.T, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(flowsBin, append([]string{"serve"}, args...)...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if grpcAddrIn(buf.String()) != "" {
			return cmd, buf
		}
	}
	t.Fatalf("flows serve %s did not start:\n%s", strings.Join(args, " "), buf.String())
	return nil, nil
}

// grpcAddrIn is the address in flows serve's "flows serving …; gRPC on
// ADDR" line, "" before it.
func grpcAddrIn(out string) string {
	m := regexp.MustCompile(`flows serving .*gRPC on (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// flows serve --mediator A,B: the sync engine and the pusher reach every
// meter through its mediator (by serial). Every meter is synced and a
// top-up is pushed that way; with one mediator stopped, only the meters
// of its shard can no longer be read.
func TestServeThroughTwoMediators(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool)
	clock := sim.NewScaledClock(time.Now(), 1)
	var ms []*sim.Meter
	for _, s := range sim.GenerateFleet(8, sim.FleetOptions{AddressPrefix: "127.118", Secret: []byte("two")}) {
		if s.Mode == "active" {
			ms = append(ms, sim.NewMeter(s, clock.Now()))
		}
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	ids := map[string]string{}
	for _, m := range fleet.Meters() {
		s := m.Spec
		nm, err := store.CreateMeter(ctx, flows.NewMeter{Serial: s.Serial, IPAddress: s.IPAddress, Port: s.Port, Hardware: s.Hardware})
		if err != nil {
			t.Fatal(err)
		}
		ids[s.Serial] = nm.ID
	}
	var meds []*exec.Cmd
	var addrs []string
	for range 2 {
		cmd, out := startServe(t, "--components", "mediator", "--grpc", "127.0.0.1:0", "--meter-gap", "0", "--database-url", url)
		meds, addrs = append(meds, cmd), append(addrs, grpcAddrIn(out.String()))
	}
	startServe(t, "--components", "sync,commands", "--mediator", strings.Join(addrs, ","), "--database-url", url, "--meter-gap", "0")
	shards, err := mediator.DialShards(addrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shards.Close()
	var inShard [2]int
	for serial := range ids {
		inShard[shards.Shard(serial)]++
	}
	if inShard[0] == 0 || inShard[1] == 0 {
		t.Fatalf("the fleet's shards are %v: the test needs meters behind both mediators", inShard)
	}
	synced := func(serial string) time.Time {
		var at *time.Time
		_ = pool.QueryRow(ctx, `SELECT last_success_at FROM flows.meter_sync_state WHERE meter_id = $1`, ids[serial]).Scan(&at)
		if at == nil {
			return time.Time{}
		}
		return *at
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	waitFor("every meter's first sync through the mediators", func() bool {
		for serial := range ids {
			if synced(serial).IsZero() {
				return false
			}
		}
		return true
	})
	// A top-up through mediator 0's shard.
	var topped *sim.Meter
	for _, m := range fleet.Meters() {
		if shards.Shard(m.Spec.Serial) == 0 {
			topped = m
		}
	}
	tok, _ := sim.VendToken(topped.Spec.Serial, topped.Spec.Key, decimal.RequireFromString("5"))
	tu, err := store.CreateTopup(ctx, ids[topped.Spec.Serial], tok, nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the top-up through its mediator", func() bool {
		got, _ := store.Topup(ctx, tu.ID)
		return got != nil && got.Status == flows.TopupCompleted
	})
	// Mediator 1 stops: its meters' syncs fail, mediator 0's go on.
	_ = meds[1].Process.Kill()
	_ = meds[1].Wait()
	before := map[string]time.Time{}
	for serial := range ids {
		before[serial] = synced(serial)
		if out, err := exec.Command(flowsBin, "meter", "sync", serial, "--database-url", url).CombinedOutput(); err != nil {
			t.Fatalf("meter sync %s: %v\n%s", serial, err, out)
		}
	}
	waitFor("mediator 0's meters synced again", func() bool {
		for serial := range ids {
			if shards.Shard(serial) == 0 && !synced(serial).After(before[serial]) {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // the other shard's syncs have had their chance
	for serial := range ids {
		if shards.Shard(serial) == 1 && synced(serial).After(before[serial]) {
			t.Errorf("%s synced with its mediator stopped: it was not read through its shard", serial)
		}
	}
}
