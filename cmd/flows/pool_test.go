package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// flows serve's pool is what its components may hold at once, at most
// half the connections the server has free (a second node finds room);
// a pool_max_conns in the URL wins; the log says how it was derived.
func TestServePoolIsDerived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	sync50, least50, _ := poolSize(serveConfig{components: []string{"sync", "commands"}, workers: 50})
	sync400, least400, _ := poolSize(serveConfig{components: []string{"sync", "commands"}, workers: 400})
	if sync400 <= sync50 || least400 <= least50 {
		t.Errorf("the pool for 400 workers (%d, writes %d) is not larger than for 50 (%d, %d)", sync400, least400, sync50, least50)
	}
	all, _, parts := poolSize(serveConfig{components: []string{"api", "sync", "commands", "mediator"}, workers: 50})
	if all <= sync50 || !strings.Contains(parts, "API") || !strings.Contains(parts, "mediator") {
		t.Errorf("the API and mediator add nothing to the pool: %d against %d (%s)", all, sync50, parts)
	}

	probe, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	free, _, err := postgres.FreeConnections(ctx, probe)
	probe.Close()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	small := serveConfig{components: []string{"api"}}
	pool, err := openServePool(ctx, url, small, log)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := poolSize(small)
	if got := int(pool.Config().MaxConns); got != want {
		t.Errorf("an API-only pool of %d connections, want the derived %d (server free: %d)", got, want, free)
	}
	pool.Close()
	if !strings.Contains(logs.String(), "database pool") || !strings.Contains(logs.String(), "API and dashboard") {
		t.Errorf("the log does not say how the pool was derived:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a pool the server has room for was warned about:\n%s", logs.String())
	}

	// Far more workers than the server has connections: capped at half
	// the free ones, with a warning naming the limit.
	logs.Reset()
	huge := serveConfig{components: []string{"sync"}, workers: 4000}
	pool, err = openServePool(ctx, url, huge, log)
	if err != nil {
		t.Fatal(err)
	}
	got := int(pool.Config().MaxConns)
	pool.Close()
	if got > max(10, (free+1)/2) {
		t.Errorf("a pool of %d connections with %d free on the server: a second node would find none", got, free)
	}
	if !strings.Contains(logs.String(), "max_connections") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning that the server capped the pool:\n%s", logs.String())
	}

	pool, err = openServePool(ctx, url+"&pool_max_conns=3", huge, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := pool.Config().MaxConns; got != 3 {
		t.Errorf("pool_max_conns=3 in the URL gave %d connections", got)
	}
	pool.Close()
}
