package http_test

import (
	"context"
	"strings"
	"testing"

	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A replica stuck on a refused entry shows in the metrics.
func TestReplicaMetrics(t *testing.T) {
	ctx := context.Background()
	store := postgres.NewStore(pgtest.NewPool(t))
	if _, err := store.Pool().Exec(ctx, `
		INSERT INTO flows.shadow_outbox (serial, changes) VALUES ('EML2137580001', '{"csq": 3}'), ('EML2137580001', '{"csq": 4}');
		INSERT INTO flows.replica_cursor (replica, last_id, failing_id, failing_attempts)
			SELECT 'twin', min(id) - 1, min(id), 4 FROM flows.shadow_outbox`); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP flows_replica_backlog Outbox entries waiting for the replica.
# TYPE flows_replica_backlog gauge
flows_replica_backlog{replica="twin"} 2
# HELP flows_replica_refusals Refused attempts in a row at the entry the replica is stuck on (0: none).
# TYPE flows_replica_refusals gauge
flows_replica_refusals{replica="twin"} 4
`
	if err := testutil.CollectAndCompare(flowshttp.NewReplicaCollector(store), strings.NewReader(want), "flows_replica_backlog", "flows_replica_refusals"); err != nil {
		t.Error(err)
	}
}
