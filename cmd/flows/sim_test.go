package main_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
)

func startSimCmd(t *testing.T, dir string) (*exec.Cmd, []sim.Spec) {
	t.Helper()
	reg := filepath.Join(dir, "fleet.json")
	os.Remove(reg)
	cmd := exec.Command(flowsBin, "sim", "--meters", "6", "--listen", "127.79:0", "--faults=false",
		"--state", filepath.Join(dir, "state.json"), "--registry-out", reg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if specs, err := sim.ReadRegistry(reg); err == nil {
			return cmd, specs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no registry; output:\n%s", out.String())
		}
	}
}

func balanceOf(t *testing.T, c *meterconn.Client, s sim.Spec) string {
	t.Helper()
	p, err := c.Read(context.Background(), meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(s.IPAddress, strconv.Itoa(s.Port))}, emop.ObjPrepayBalance)
	if err != nil {
		t.Fatalf("read %s: %v", s.Serial, err)
	}
	b, _ := emop.DecodeBalance(p)
	return b.StringFixed(2)
}

// flows sim serves a fleet, flows sim token vends tokens it accepts once,
// and a restart with the same state file keeps balances and used tokens.
func TestSimCommand(t *testing.T) {
	dir := t.TempDir()
	cmd, specs := startSimCmd(t, dir)
	if len(specs) != 6 || specs[0].Serial != "EML2137580826" || specs[0].Key == "" || specs[0].Port == 0 {
		t.Fatalf("registry: %+v", specs)
	}
	c, _ := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 50 * time.Millisecond})
	s := specs[1]
	before := balanceOf(t, c, s)
	out, err := exec.Command(flowsBin, "sim", "token", "--registry", filepath.Join(dir, "fleet.json"), "--serial", s.Serial, "--amount", "10.00").CombinedOutput()
	tok := strings.TrimSpace(string(out))
	if err != nil || len(tok) != 20 {
		t.Fatalf("sim token: %v %q", err, out)
	}
	target := meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(s.IPAddress, strconv.Itoa(s.Port))}
	if err := c.Write(context.Background(), target, emop.ObjTokenSend, []byte(tok)); err != nil {
		t.Fatal(err)
	}
	after := balanceOf(t, c, s)
	if b, a := mustF(before), mustF(after); a-b < 9.9 || a-b > 10.01 {
		t.Errorf("balance %s → %s after a £10 token", before, after)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	_, specs2 := startSimCmd(t, dir)
	if specs2[1].Key != s.Key {
		t.Fatalf("restart changed the meter key")
	}
	c2, _ := meterconn.New(meterconn.Config{Attempts: 1})
	if got := balanceOf(t, c2, specs2[1]); mustF(got) < mustF(after)-0.5 {
		t.Errorf("balance after restart %s, was %s: state not kept", got, after)
	}
	target2 := meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(specs2[1].IPAddress, strconv.Itoa(specs2[1].Port))}
	err = c2.Write(context.Background(), target2, emop.ObjTokenSend, []byte(tok))
	var nak *emop.NakError
	if !errors.As(err, &nak) || nak.Code != emop.NakSecurity {
		t.Errorf("token replayed after restart: %v, want NAK 6", err)
	}
	for _, args := range [][]string{
		{"sim", "token", "--registry", filepath.Join(dir, "fleet.json"), "--serial", "EML9999999999", "--amount", "5"},
		{"sim", "token", "--registry", filepath.Join(dir, "fleet.json"), "--serial", s.Serial, "--amount", "5.001"},
		{"sim", "--listen", "10.0.0:80"},
		{"sim", "--meters", "0"},
	} {
		if out, err := exec.Command(flowsBin, args...).CombinedOutput(); err == nil {
			t.Errorf("flows %v accepted: %s", args, out)
		}
	}
}

func mustF(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// simProc is a running flows sim.
type simProc struct {
	cmd    *exec.Cmd
	line   string     // its first line: "simulating N meters (...)"
	specs  []sim.Spec // its registry
	rest   chan string
	errOut bytes.Buffer
}

// runSim starts flows sim with args (and a registry file) under the
// open-file limits soft and hard (0: as they are) and returns once it says
// it is simulating. An error starting is returned with what it said.
func runSim(t *testing.T, soft, hard int, args ...string) (*simProc, error) {
	t.Helper()
	reg := filepath.Join(t.TempDir(), "fleet.json")
	args = append([]string{"sim", "--registry-out", reg}, args...)
	p := &simProc{cmd: exec.Command(flowsBin, args...), rest: make(chan string, 1)}
	if soft > 0 {
		// Soft first: the hard limit may not go below it.
		script := "ulimit -S -n " + strconv.Itoa(soft) + " && ulimit -H -n " + strconv.Itoa(hard) + ` && exec "$0" "$@"`
		p.cmd = exec.Command("sh", append([]string{"-c", script, flowsBin}, args...)...)
	}
	p.cmd.Stderr = &p.errOut
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	r := bufio.NewReader(out)
	if p.line, err = r.ReadString('\n'); err != nil {
		_ = p.cmd.Wait()
		return nil, fmt.Errorf("flows %v: %w: %s", args[3:], err, p.errOut.String())
	}
	if p.specs, err = sim.ReadRegistry(reg); err != nil {
		t.Fatal(err)
	}
	go func() {
		b, _ := io.ReadAll(r)
		p.rest <- string(b)
	}()
	return p, nil
}

// stop ends flows sim as a user does and returns the rest of what it printed.
func (p *simProc) stop() string {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	out := <-p.rest
	_ = p.cmd.Wait()
	return out
}

func simTarget(s sim.Spec) meterconn.Target {
	return meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(s.IPAddress, strconv.Itoa(s.Port))}
}

// The cellular faults' flags are checked, naming the flag.
func TestSimFaultFlagsValidated(t *testing.T) {
	for flag, args := range map[string][]string{
		"--gap":          {"--gap", "-1s"},
		"--drop-rate":    {"--drop-rate", "1.5"},
		"--timeout-rate": {"--drop-rate", "0.6", "--timeout-rate", "0.6"},
		"--jitter":       {"--latency", "1s", "--jitter", "2s"},
		"--listeners":    {"--listeners", "many"},
		"--listen":       {"--meters", "70000", "--listen", "127.255:0"},
	} {
		out, err := exec.Command(flowsBin, append([]string{"sim", "--faults=false"}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), flag) {
			t.Errorf("flows sim %v: %v, %s; want an error naming %s", args, err, out, flag)
		}
	}
	if out, err := exec.Command(flowsBin, "sim", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--timeout-rate 0.001") {
		t.Errorf("flows sim --help does not explain the faults: %v\n%s", err, out)
	}
}

// flows sim --gap refuses a request sooner than the gap and answers one
// after it; --drop-rate and --timeout-rate take their share; it is all
// counted and reported on exit.
func TestSimCellularFaults(t *testing.T) {
	ctx := context.Background()
	p, err := runSim(t, 0, 0, "--meters", "3", "--listen", "127.81:0", "--faults=false", "--gap", "2s", "--latency", "50ms", "--jitter", "20ms")
	if err != nil {
		t.Fatal(err)
	}
	tg := simTarget(p.specs[1])
	// polite keeps the gap after its own requests; eager keeps none.
	polite, _ := meterconn.New(meterconn.Config{Attempts: 1, Gap: 2100 * time.Millisecond})
	eager, _ := meterconn.New(meterconn.Config{Attempts: 1})
	if _, err := polite.Read(ctx, tg, emop.ObjPrepayBalance); err != nil {
		t.Fatal(err)
	}
	if _, err := eager.Read(ctx, tg, emop.ObjPrepayBalance); err == nil {
		t.Error("a request straight after an answer was answered despite --gap 2s")
	}
	if _, err := polite.Read(ctx, tg, emop.ObjPrepayBalance); err != nil {
		t.Errorf("a request after the gap: %v", err)
	}
	if out := p.stop(); !strings.Contains(out, "answered 2 requests; refused 1 sooner than the gap") {
		t.Errorf("on exit: %q", out)
	}

	for flag, want := range map[string]string{"--drop-rate": "dropped 20;", "--timeout-rate": "left 20 unanswered"} {
		p, err := runSim(t, 0, 0, "--meters", "2", "--listen", "127.81:0", "--faults=false", flag, "1")
		if err != nil {
			t.Fatal(err)
		}
		short, _ := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: 100 * time.Millisecond})
		for range 20 {
			if _, err := short.Read(ctx, simTarget(p.specs[0]), emop.ObjPrepayBalance); err == nil {
				t.Errorf("%s 1: a request was answered", flag)
			}
		}
		if out := p.stop(); !strings.Contains(out, "answered 0 requests") || !strings.Contains(out, want) {
			t.Errorf("%s 1, on exit: %q, want %q", flag, out, want)
		}
	}
}

// flows sim raises its soft open-file limit to the hard one; a fleet with
// a listener per meter that the hard limit cannot hold is refused, saying
// so, with --listeners per-meter, and served from shared listeners
// otherwise.
func TestSimFileLimit(t *testing.T) {
	// 570 served meters with a listener each and room for 4,096
	// connections: about 4,700 files, within the hard 6,000; the soft
	// 1,024 would leave less than half for connections.
	p, err := runSim(t, 1024, 6000, "--meters", "600", "--listen", "127.82:0", "--faults=false", "--listeners", "per-meter")
	if err != nil {
		t.Fatalf("the soft limit was not raised: %v", err)
	}
	if !strings.Contains(p.line, "a listener each") {
		t.Errorf("first line %q", p.line)
	}
	p.stop()

	// 3,325 served: neither 4,096 connections nor half the limit left.
	_, err = runSim(t, 1024, 6000, "--meters", "3500", "--listen", "127.82:0", "--faults=false", "--listeners", "per-meter")
	if err == nil || !strings.Contains(err.Error(), "--listeners") || !strings.Contains(err.Error(), "the limit is 6000") {
		t.Errorf("3,500 meters with a listener each under a hard limit of 6,000: %v", err)
	}

	p, err = runSim(t, 1024, 6000, "--meters", "3500", "--listen", "127.82:0", "--faults=false")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.line, "shared listeners") {
		t.Errorf("first line %q", p.line)
	}
	c, _ := meterconn.New(meterconn.Config{Attempts: 1})
	last := p.specs[len(p.specs)-1]
	for i := len(p.specs) - 1; last.Mode == "passive"; i-- {
		last = p.specs[i]
	}
	for _, s := range []sim.Spec{p.specs[0], last} {
		if s.Port != p.specs[0].Port {
			t.Errorf("meter %s on port %d, not the shared %d", s.Serial, s.Port, p.specs[0].Port)
		}
		if _, err := c.Read(context.Background(), simTarget(s), emop.ObjCSQ); err != nil {
			t.Errorf("meter %s at %s: %v", s.Serial, simTarget(s).Addr, err)
		}
	}
	p.stop()
}
