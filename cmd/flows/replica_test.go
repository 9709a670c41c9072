package main_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

// flows replica status names each replica with its backlog, the entry it
// refuses and how many were quarantined.
func TestReplicaStatus(t *testing.T) {
	url := pgtest.NewDB(t)
	if out, err := flowsCmd(t, "replica", "status", "--database-url", url); err != nil || !strings.Contains(out, "no replica") {
		t.Fatalf("no replicas: %v\n%s", err, out)
	}
	if b, err := exec.Command("psql", url, "-Xqc", `
		INSERT INTO flows.shadow_outbox (serial, changes) VALUES ('EML2137580001', '{"csq": 3}'), ('EML2137580001', '{"csq": 4}');
		INSERT INTO flows.replica_cursor (replica, last_id, failing_id, failing_attempts, last_error)
			SELECT 'twin:5432/flows', min(id), max(id), 2, 'refused: csq out of range' FROM flows.shadow_outbox;`).CombinedOutput(); err != nil {
		t.Fatal(err, string(b))
	}
	out, err := flowsCmd(t, "replica", "status", "--database-url", url)
	if err != nil || !strings.Contains(out, "twin:5432/flows") || !strings.Contains(out, "2 attempts: refused: csq out of range") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if fields := strings.Fields(strings.Split(out, "\n")[1]); len(fields) < 3 || fields[2] != "1" {
		t.Errorf("backlog column: %q, want 1 entry waiting", strings.Split(out, "\n")[1])
	}
}
