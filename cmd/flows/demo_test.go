package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
)

type readyFile struct {
	DatabaseURL string `json:"database_url"`
	HTTPURL     string `json:"http_url"`
	GRPCAddr    string `json:"grpc_addr"`
	AdminToken  string `json:"admin_token"`
	ESCO        string `json:"esco"`
	ESCOID      string `json:"esco_id"`
	Meters      []struct {
		Serial    string `json:"serial"`
		IPAddress string `json:"ip_address"`
		Port      int    `json:"port"`
		Mode      string `json:"mode"`
		Hardware  string `json:"hardware"`
		Key       string `json:"key"`
	} `json:"meters"`
	TwinDatabaseURL string   `json:"twin_database_url"`
	Twins           []string `json:"twins"`
}

// startDemo runs `flows demo` and waits for its ready-file.
type demoProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// readyPath is the last started demo's ready-file.
var readyPath string

func startDemo(t *testing.T, dataDir string, args ...string) (*demoProc, readyFile, *lockedBuffer) {
	t.Helper()
	return startDemoListening(t, dataDir, append([]string{"--sim-listen", "127.78:0"}, args...)...)
}

// startDemoListening is startDemo with the simulator where args say (the
// demo's default addresses when they do not).
func startDemoListening(t *testing.T, dataDir string, args ...string) (*demoProc, readyFile, *lockedBuffer) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready.json")
	readyPath = ready
	cmd := exec.Command(flowsBin, append([]string{"demo", "--data", dataDir, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--ready-file", ready}, args...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "FLOWS_JWT_SECRET=")
	// In a process group of its own, as a shell runs a job: Ctrl-C goes
	// to the whole group (see stopDemo).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &demoProc{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-p.done:
			t.Fatalf("demo exited before it was ready (%v); output:\n%s", err, out.String())
		default:
		}
		b, err := os.ReadFile(ready)
		if err == nil {
			var rf readyFile
			if err := json.Unmarshal(b, &rf); err != nil {
				t.Fatalf("ready-file is not JSON: %v\n%s", err, b)
			}
			return p, rf, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready-file after 90 s; output:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func psql(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	out, err := exec.Command("psql", url, "-XAtc", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// stopDemo stops a demo as Ctrl-C would, and holds its shutdown to what
// an operator expects: a clean exit, and no warning or error logged for
// the work it cancelled on purpose.
func stopDemo(t *testing.T, p *demoProc, out *lockedBuffer) {
	t.Helper()
	before := out.Len()
	// Ctrl-C in a terminal: SIGINT to the foreground process group, the
	// demo and whatever it started there.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("demo exited with %v after Ctrl-C; output:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop within 30 s of Ctrl-C")
	}
	for _, l := range strings.Split(out.String()[before:], "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			t.Errorf("the demo's shutdown logged a warning or an error: %s", l)
		}
	}
}

func TestDemoEndToEnd(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "flows-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	// The postgres user (when we are root) must be able to reach inside.
	_ = os.Chmod(dataDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dataDir) })

	cmd, rf, out := startDemo(t, dataDir, "--meters", "12")
	if n, err := psql(t, rf.DatabaseURL, "SELECT count(*) FROM flows.meter_registry"); err != nil || n != "12" {
		t.Fatalf("psql with the ready-file's database_url: %q, %v", n, err)
	}
	if len(rf.Meters) != 12 || rf.ESCO != "DEMO" || rf.ESCOID == "" {
		t.Fatalf("ready-file meters %d esco %q/%q", len(rf.Meters), rf.ESCO, rf.ESCOID)
	}
	kinds := map[string]bool{}
	for _, m := range rf.Meters {
		if m.Serial == "" || (m.Mode == "active" && m.Port == 0) || m.Hardware == "" || len(m.Key) != 32 {
			t.Errorf("ready-file meter incomplete: %+v", m)
		}
		kinds[m.Mode+"/"+m.Hardware] = true
	}
	for _, k := range []string{"active/C1.w", "active/EMA1.w", "active/B1.w"} {
		if !kinds[k] {
			t.Errorf("demo fleet lacks %s meters; has %v", k, kinds)
		}
	}
	// The seed's example serial exists, with history.
	if n, _ := psql(t, rf.DatabaseURL, "SELECT count(*) FROM flows.meter_prepay_balance b JOIN flows.meter_registry r ON r.id = b.meter_id WHERE r.serial = 'EML2137580826'"); n == "0" {
		t.Errorf("EML2137580826 has no balance history")
	}
	// The simulated meters answer EMOP where the ready-file and the
	// registry say they are.
	c, err := meterconn.New(meterconn.Config{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	m0 := rf.Meters[0]
	if _, err := c.Read(context.Background(), meterconn.Target{Serial: m0.Serial, Addr: net.JoinHostPort(m0.IPAddress, strconv.Itoa(m0.Port))}, emop.ObjPrepayBalance); err != nil {
		t.Errorf("meter %s at %s:%d: %v", m0.Serial, m0.IPAddress, m0.Port, err)
	}
	if reg, _ := psql(t, rf.DatabaseURL, "SELECT host(ip_address) || ':' || port FROM flows.meter_registry WHERE serial = '"+m0.Serial+"'"); reg != net.JoinHostPort(m0.IPAddress, strconv.Itoa(m0.Port)) {
		t.Errorf("registry has %s for %s, the simulator listens on %s:%d", reg, m0.Serial, m0.IPAddress, m0.Port)
	}
	// The sync engine brings live values from the simulated meters within
	// a minute of start.
	var synced string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		synced, _ = psql(t, rf.DatabaseURL, "SELECT count(*) FROM flows.meter_shadows WHERE synced_at ? 'balance'")
		if synced != "0" && synced != "" {
			break
		}
	}
	if synced == "0" || synced == "" {
		t.Errorf("no meter synced within a minute of the demo starting")
	}
	before, _ := psql(t, rf.DatabaseURL, "SELECT coalesce(max(syncs), 0) FROM flows.meter_sync_state s JOIN flows.meter_registry r ON r.id = s.meter_id WHERE r.serial = 'EML2137580826'")
	if out, err := exec.Command(flowsBin, "meter", "sync", "EML2137580826", "--database-url", rf.DatabaseURL).CombinedOutput(); err != nil || !strings.Contains(string(out), "queued") {
		t.Errorf("flows meter sync: %v %s", err, out)
	}
	var after string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		after, _ = psql(t, rf.DatabaseURL, "SELECT syncs FROM flows.meter_sync_state s JOIN flows.meter_registry r ON r.id = s.meter_id WHERE r.serial = 'EML2137580826'")
		if after != before && after != "" {
			break
		}
	}
	if after == before {
		t.Errorf("on-demand sync did not run (syncs %s → %s)", before, after)
	}
	// The mediator relays to the same meters.
	med, err := mediator.Dial(rf.GRPCAddr, nil)
	if err != nil || rf.GRPCAddr == "" {
		t.Fatalf("mediator at %q: %v", rf.GRPCAddr, err)
	}
	defer med.Close()
	if _, err := med.Read(context.Background(), meterconn.Target{Serial: m0.Serial}, emop.ObjSerial); err != nil {
		t.Errorf("read through the demo's mediator: %v", err)
	}
	// Commands: a token vended from the ready-file and submitted to the
	// ledger is pushed and confirmed; a future tariff is pushed and verified.
	m2 := rf.Meters[2]
	tok, err := exec.Command(flowsBin, "sim", "token", "--registry", readyPath, "--serial", m2.Serial, "--amount", "12.34").Output()
	if err != nil {
		t.Fatalf("sim token from the ready-file: %v", err)
	}
	if out, err := exec.Command(flowsBin, "meter", "topup", m2.Serial, "--token", strings.TrimSpace(string(tok)), "--database-url", rf.DatabaseURL).CombinedOutput(); err != nil {
		t.Fatalf("meter topup: %v\n%s", err, out)
	}
	if out, err := exec.Command(flowsBin, "meter", "topup", m2.Serial, "--token", strings.TrimSpace(string(tok)), "--database-url", rf.DatabaseURL).CombinedOutput(); err == nil || !strings.Contains(string(out), "submitted before") {
		t.Errorf("the same token twice: %v\n%s", err, out)
	}
	activation := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	if out, err := exec.Command(flowsBin, "meter", "tariff", m2.Serial, "--from-ts", activation, "--unit-rate", "0.3", "--standing-charge", "0.55",
		"--database-url", rf.DatabaseURL).CombinedOutput(); err != nil || !strings.Contains(string(out), `"status": "pending"`) {
		t.Fatalf("meter tariff: %v\n%s", err, out)
	}
	// The prepayment settings not given are the meter's own (its active
	// tariff's debt recovery, not a fixed 0.30).
	if same, _ := psql(t, rf.DatabaseURL, `SELECT (r.tariff->>'prepayment_debt_recovery_rate')::numeric = (ms.tariffs_active->>'prepayment_debt_recovery_rate')::numeric
		AND (r.tariff->>'prepayment_emergency_credit')::numeric = (ms.tariffs_active->>'prepayment_emergency_credit')::numeric
		FROM flows.tariff_requests r JOIN flows.meter_shadows ms ON ms.id = r.meter_id`); same != "t" {
		t.Errorf("meter tariff without --debt-recovery-rate or --emergency-credit: the request's are the meter's own: %q, want t", same)
	}
	var topup, tariff string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		topup, _ = psql(t, rf.DatabaseURL, "SELECT status FROM flows.topups WHERE requested_by <> 'demo-customer'")
		tariff, _ = psql(t, rf.DatabaseURL, "SELECT status FROM flows.tariff_requests")
		if topup == "completed" && tariff == "verified" {
			break
		}
	}
	if topup != "completed" || tariff != "verified" {
		t.Errorf("top-up %q, tariff request %q; want completed and verified", topup, tariff)
	}
	// The API answers with the printed admin token.
	areq, _ := http.NewRequest("GET", rf.HTTPURL+"/api/v1/meters?limit=500", nil)
	areq.Header.Set("Authorization", "Bearer "+rf.AdminToken)
	aresp, err := http.DefaultClient.Do(areq)
	if err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Meters []map[string]any `json:"meters"`
	}
	_ = json.NewDecoder(aresp.Body).Decode(&listed)
	aresp.Body.Close()
	if aresp.StatusCode != 200 || len(listed.Meters) != 12 {
		t.Errorf("GET /api/v1/meters with the admin token: %d, %d meters", aresp.StatusCode, len(listed.Meters))
	}
	// Prometheus metrics: meters by health, EMOP requests, syncs, HTTP.
	mreq, _ := http.NewRequest("GET", rf.HTTPURL+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+rf.AdminToken)
	mresp, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`flows_meters{health="healthy"}`, `flows_meter_request_duration_seconds_count{kind="read",result="ok"}`,
		`flows_syncs_total{outcome="ok"}`, `flows_http_request_duration_seconds_count{code="200",route="GET /api/v1/meters"}`, `flows_queue_jobs{state="completed"}`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	resp, err := http.Get(rf.HTTPURL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	secret, err := os.ReadFile(filepath.Join(dataDir, "jwt-secret"))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := flowshttp.ParseToken([]byte(strings.TrimSpace(string(secret))), rf.AdminToken, time.Now())
	if err != nil || claims.Role != flowshttp.RoleAdmin {
		t.Fatalf("admin token: %+v, %v", claims, err)
	}
	// A second demo on the same data directory is refused while this runs.
	second := exec.Command(flowsBin, "demo", "--data", dataDir, "--http", "127.0.0.1:0", "--sim-listen", "127.78:0", "--grpc", "127.0.0.1:0")
	if b, err := second.CombinedOutput(); err == nil || !strings.Contains(string(b), "in use") {
		t.Errorf("second demo on the same data: %v\n%s", err, b)
	}
	if _, err := psql(t, rf.DatabaseURL, "UPDATE flows.meter_registry SET name = 'kept' WHERE serial = 'EML2137580826'"); err != nil {
		t.Fatal(err)
	}
	stopDemo(t, cmd, out)
	if _, err := psql(t, rf.DatabaseURL, "SELECT 1"); err == nil {
		t.Fatal("database still answers after the demo stopped")
	}
	firstURL := rf.DatabaseURL

	// Restarting keeps the data (no reseed) and the database's address
	// (yesterday's psql URL works); --fresh starts over.
	cmd, rf, out = startDemo(t, dataDir, "--meters", "12")
	if rf.DatabaseURL != firstURL {
		t.Errorf("after restart the database URL is %s, was %s", rf.DatabaseURL, firstURL)
	}
	if name, _ := psql(t, rf.DatabaseURL, "SELECT name FROM flows.meter_registry WHERE serial = 'EML2137580826'"); name != "kept" {
		t.Errorf("after restart name = %q, want the edit kept", name)
	}
	stopDemo(t, cmd, out)
	cmd, rf, out = startDemo(t, dataDir, "--meters", "3", "--fresh")
	if n, _ := psql(t, rf.DatabaseURL, "SELECT count(*) FROM flows.meter_registry"); n != "3" {
		t.Errorf("after --fresh with 3 meters: %s meters", n)
	}
	stopDemo(t, cmd, out)
}

// When the demo's default simulator addresses are taken (another demo,
// another program) the demo still starts: its meters listen on free ports
// of the same addresses, are registered where they listen, and answer.
func TestDemoDefaultSimAddressesTakenGiveWay(t *testing.T) {
	// The first meter's default address (127.77:8080). Held by someone
	// else already is as good.
	if ln, err := net.Listen("tcp", "127.77.0.1:8080"); err == nil {
		defer ln.Close()
	}
	p, rf, out := startDemoListening(t, t.TempDir(), "--meters", "3")
	defer stopDemo(t, p, out)
	if !strings.Contains(out.String(), "the meters listen on free ports") {
		t.Errorf("the demo did not say its meters moved to free ports:\n%s", out.String())
	}
	if port, err := psql(t, rf.DatabaseURL, `SELECT port FROM flows.meter_registry WHERE ip_address = '127.77.0.1'`); err != nil || port == "" || port == "8080" {
		t.Fatalf("the meter at 127.77.0.1 is registered on port %q (%v), want the free port it listens on", port, err)
	}
	// Registered where they listen: the live syncs read them (the seeded
	// past records no sync; the demo's fleet has a faulty meter or two).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		n, err := psql(t, rf.DatabaseURL, `SELECT count(*) FROM flows.meter_sync_state WHERE last_success_at IS NOT NULL`)
		if err == nil && n != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no meter read on its free port after a minute (%v)", err)
		}
	}
}

// Simulator addresses given with --sim-listen and held by another program
// are a usage error that says how to get free ports.
func TestDemoSimAddressesInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.79.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cmd := exec.Command(flowsBin, "demo", "--data", t.TempDir(), "--meters", "2", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--sim-listen", fmt.Sprintf("127.79:%d", port))
	b, err := cmd.CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(b), "address already in use") || !strings.Contains(string(b), "--sim-listen 127.79:0") {
		t.Errorf("demo on a taken address: %v\n%s\nwant exit 2 naming --sim-listen 127.79:0", err, b)
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--meters", "0"}, "--meters"},
		{[]string{"demo", "--speed", "-1"}, "--speed"},
		{[]string{"migrate", "sideways", "--database-url", "postgres://x@127.0.0.1:1/x"}, `"sideways" is not up or status`},
		{[]string{"migrate", "up"}, "--database-url"},
		{[]string{"serve"}, "--database-url"},
		{[]string{"serve", "--database-url", "postgres://x@127.0.0.1:1/x", "--components", "api,toaster"}, "--components"},
		{[]string{"meter", "show", "bad-serial", "--database-url", "postgres://x@127.0.0.1:1/x"}, "serial"},
	} {
		cmd := exec.Command(flowsBin, c.args...)
		cmd.Env = append(os.Environ(), "FLOWS_DATABASE_URL=")
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), c.want) {
			t.Errorf("flows %v: err %v, output %q; want a failure naming %q", c.args, err, b, c.want)
		}
	}
}
