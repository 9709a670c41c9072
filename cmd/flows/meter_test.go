package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

func flowsCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	b, err := exec.Command(flowsBin, args...).CombinedOutput()
	return string(b), err
}

func TestMigrateAndMeterCommands(t *testing.T) {
	url := pgtest.EmptyDB(t)
	out, err := flowsCmd(t, "migrate", "status", "--database-url", url)
	if err != nil || !strings.Contains(out, "0001_meter_domain\tpending") {
		t.Fatalf("status before: %v\n%s", err, out)
	}
	if out, err := flowsCmd(t, "migrate", "up", "--database-url", url); err != nil || !strings.Contains(out, "applied 0001_meter_domain") || !strings.Contains(out, "applied 0002_simulator_event_types") || !strings.Contains(out, "applied 0004_registry_notify") {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	if out, err := flowsCmd(t, "migrate", "--database-url", url); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: %v\n%s", err, out)
	}
	if out, _ := flowsCmd(t, "migrate", "status", "--database-url", url); !strings.Contains(out, "0001_meter_domain\tapplied") {
		t.Fatalf("status after:\n%s", out)
	}
	if _, err := exec.Command("psql", url, "-Xqc", "INSERT INTO flows.escos (code, name) VALUES ('WLCE', 'Water Lilies')").CombinedOutput(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A file with one bad entry imports nothing, and says which entry.
	bad := write("bad.json", `{"meters": [{"serial": "EML2137580001", "ip_address": "127.77.0.1"},
		{"serial": "EML2137580002", "ip_address": "127.77.0.999"}]}`)
	out, err = flowsCmd(t, "meter", "import", bad, "--esco", "WLCE", "--database-url", url)
	if err == nil || !strings.Contains(out, "meters[1].ip_address") {
		t.Fatalf("bad import: %v\n%s", err, out)
	}
	if out, _ := flowsCmd(t, "meter", "list", "--database-url", url); strings.Contains(out, "EML2137580001") {
		t.Fatalf("a rejected import left meters behind:\n%s", out)
	}
	good := write("good.json", `{"meters": [
		{"serial": "EML2137580001", "ip_address": "127.77.0.1", "port": 8080, "hardware": "C1.w", "layout": "twin", "key": "00"},
		{"serial": "EML2137580002", "ip_address": "127.77.0.2", "hardware": "EMA1.w", "layout": "solar"}]}`)
	if out, err := flowsCmd(t, "meter", "import", good, "--esco", "WLCE", "--database-url", url); err != nil || !strings.Contains(out, "2 new, 0 updated") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// Re-importing after an IP change updates, without duplicating.
	moved := write("moved.json", `{"meters": [{"serial": "EML2137580002", "ip_address": "127.77.0.9"}]}`)
	if out, err := flowsCmd(t, "meter", "import", moved, "--esco", "WLCE", "--database-url", url); err != nil || !strings.Contains(out, "0 new, 1 updated") {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	if out, err := flowsCmd(t, "meter", "list", "--esco", "NOPE", "--database-url", url); err == nil || !strings.Contains(out, `"NOPE"`) || !strings.Contains(out, "not found") {
		t.Errorf("meter list of an ESCO that does not exist: %v %q, want a failure naming it", err, out)
	}
	out, err = flowsCmd(t, "meter", "list", "--output", "json", "--esco", "wlce", "--database-url", url)
	if err != nil {
		t.Fatal(err, out)
	}
	var ms []struct {
		Serial    string `json:"serial"`
		IPAddress string `json:"ip_address"`
		ESCOCode  string `json:"esco_code"`
	}
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 2 || ms[1].IPAddress != "127.77.0.9" || ms[0].ESCOCode != "WLCE" {
		t.Fatalf("list: %v %+v\n%s", err, ms, out)
	}
	out, err = flowsCmd(t, "meter", "show", "EML2137580002", "--database-url", url)
	if err != nil {
		t.Fatal(err, out)
	}
	var st struct {
		Registers []struct {
			Element           string `json:"element"`
			DirectionReversed bool   `json:"direction_reversed"`
		} `json:"registers"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Registers) != 1 || st.Registers[0].Element != "SINGLE" || !st.Registers[0].DirectionReversed {
		t.Fatalf("show solar meter: %v\n%s", err, out)
	}
	if out, err := flowsCmd(t, "meter", "show", "EML2137589999", "--database-url", url); exitCode(err) != 1 || !strings.Contains(out, "not found") {
		t.Fatalf("show unknown: %v\n%s\nwant exit 1, not found", err, out)
	}
	// The table an operator reads: state beside identity, "-" for not read yet.
	out, err = flowsCmd(t, "meter", "list", "--esco", "WLCE", "--database-url", url)
	if err != nil || !strings.Contains(out, "BALANCE") || !strings.Contains(out, "LAST ONLINE") || !strings.Contains(out, "EML2137580002") {
		t.Fatalf("list table: %v\n%s", err, out)
	}
	// Shell completion of a SERIAL: the registry's serials (with the
	// meter's name when it has one), never file names.
	out, err = flowsCmd(t, "__complete", "meter", "show", "--database-url", url, "EML213758")
	if err != nil || !strings.Contains(out, "EML2137580001\n") || !strings.Contains(out, "EML2137580002\n") || !strings.Contains(out, "\n:4\n") {
		t.Errorf("completing meter show EML213758: %v\n%s\nwant both serials and no file completion (:4)", err, out)
	}
	if out, _ := flowsCmd(t, "__complete", "meter", "sync", "--database-url", url, "EML9"); strings.Contains(out, "EML21") || !strings.HasPrefix(out, ":4\n") {
		t.Errorf("completing meter sync EML9: %s", out)
	}
	// Usage errors exit 2 with the usage line; they never reach the database.
	for _, args := range [][]string{{"meter", "lst"}, {"meter", "show"}, {"meter", "list", "--output", "yaml"}, {"meter", "topup", "EML2137580002"},
		{"meter", "list", "--health", "bogus"}} {
		out, err := flowsCmd(t, append(args, "--database-url", "postgres://nobody@127.0.0.1:1/none")...) // a database that is not there
		if exitCode(err) != 2 || !strings.Contains(out, "Usage: flows meter") {
			t.Errorf("flows %v: %v\n%s\nwant exit 2 with the usage line", args, err, out)
		}
	}
}

// exitCode is a finished command's exit status (0 for a nil error).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
