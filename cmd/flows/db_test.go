package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// flows db grant prints a URL that connects as a login seeing only its
// ESCO's meters; flows db revoke removes it, and it connects no more.
func TestDBGrantRevoke(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDB(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, sql := range []string{
		`INSERT INTO flows.escos (code, name) VALUES ('WLCE', 'Water Lilies'), ('HMCE', 'Hill Mill')`,
		`INSERT INTO flows.meter_registry (serial, esco) SELECT 'EML213758000' || g, (SELECT id FROM flows.escos WHERE code = 'WLCE') FROM generate_series(1, 3) g`,
		`INSERT INTO flows.meter_registry (serial, esco) VALUES ('EML2137589999', (SELECT id FROM flows.escos WHERE code = 'HMCE'))`,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	login := fmt.Sprintf("t_cli_%d", os.Getpid())
	cmd := exec.Command(flowsBin, "db", "grant", "--role", "readonly", "--esco", "WLCE", "--login", login, "--database-url", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = flowsCmd(t, "db", "revoke", "--login", login, "--database-url", url) })
	loginURL := strings.TrimSpace(string(out))
	if !strings.HasPrefix(loginURL, "postgres://"+login+":") || strings.Count(loginURL, "\n") != 0 {
		t.Fatalf("grant printed %q, want one connection URL for %s", loginURL, login)
	}
	// psql takes it as it is (no pool_ settings or such).
	psql, err := exec.Command("psql", loginURL, "-XAtc", `SELECT string_agg(serial, ',' ORDER BY serial) FROM flows.meter_registry`).CombinedOutput()
	if err != nil || strings.TrimSpace(string(psql)) != "EML2137580001,EML2137580002,EML2137580003" {
		t.Errorf("psql as the login: %v: %q, want WLCE's three meters", err, psql)
	}
	if out, _ := flowsCmd(t, "db", "logins", "--database-url", url); !strings.Contains(out, login) || !strings.Contains(out, "WLCE") {
		t.Errorf("db logins:\n%s", out)
	}

	if out, err := flowsCmd(t, "db", "grant", "--role", "readonly", "--login", login, "--database-url", url); err == nil || !strings.Contains(out, "--login") {
		t.Errorf("granting the same login again: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--role", "admin", "--login", "x_1"}, "--role"},
		{[]string{"--role", "readonly", "--login", "X"}, "--login"},
		{[]string{"--role", "readonly", "--login", "x_1", "--esco", "NOPE"}, "--esco"},
	} {
		out, err := flowsCmd(t, append(append([]string{"db", "grant"}, c.args...), "--database-url", url)...)
		if err == nil || !strings.Contains(out, c.flag) {
			t.Errorf("grant %v: %v, want refused naming %s\n%s", c.args, err, c.flag, out)
		}
	}

	if out, err := flowsCmd(t, "db", "revoke", "--login", login, "--database-url", url); err != nil || !strings.Contains(out, "revoked login "+login) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if c, err := pgx.Connect(ctx, loginURL); err == nil {
		c.Close(ctx)
		t.Errorf("the revoked login connected")
	}
	if out, err := flowsCmd(t, "db", "revoke", "--login", login, "--database-url", url); err == nil || !strings.Contains(out, "no login") {
		t.Errorf("revoking again: %v\n%s", err, out)
	}
}

// The demo's ready-file has a read-only login of the demo's ESCO.
func TestDemoReadonlyLogin(t *testing.T) {
	dataDir := t.TempDir()
	_, rf, out := startDemo(t, dataDir, "--meters", "3", "--past", "0")
	b, err := os.ReadFile(readyPath)
	if err != nil {
		t.Fatal(err)
	}
	var extra struct {
		ReadonlyDatabaseURL string `json:"readonly_database_url"`
	}
	if err := json.Unmarshal(b, &extra); err != nil || extra.ReadonlyDatabaseURL == "" {
		t.Fatalf("ready-file without readonly_database_url (%v):\n%s", err, b)
	}
	// Printed before the ready-file is written; the pipe from the demo
	// may take a moment to deliver it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(out.String(), "for Grafana or psql"); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), extra.ReadonlyDatabaseURL) || !strings.Contains(out.String(), "for Grafana or psql") {
		t.Errorf("the demo did not print the read-only URL:\n%s", out)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, extra.ReadonlyDatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var meters int
	var code string
	if err := conn.QueryRow(ctx, `SELECT count(*), min(e.code) FROM flows.meter_registry m JOIN flows.escos e ON e.id = m.esco`).Scan(&meters, &code); err != nil {
		t.Fatal(err)
	}
	if meters != len(rf.Meters) || code != rf.ESCO {
		t.Errorf("the read-only login sees %d meters of %s, want the demo's %d of %s", meters, code, len(rf.Meters), rf.ESCO)
	}
	if _, err := conn.Exec(ctx, `UPDATE flows.meter_shadows SET balance = 1`); err == nil {
		t.Errorf("the read-only login wrote")
	}
}
