package main_test

import (
	"bytes"
	"context"
	"errors"
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
