package main_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCertsCommand(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		b, err := exec.Command(flowsBin, append([]string{"certs", "--dir", dir}, args...)...).CombinedOutput()
		return string(b), err
	}
	for _, args := range [][]string{{"init", "test"}, {"server", "test", "--host", "mediator.example"}, {"client", "test", "ops", "--ou", "internal"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("certs %v: %v\n%s", args, err, out)
		}
	}
	if out, err := run("client", "test", "x", "--ou", "root"); err == nil || !strings.Contains(out, "--ou") {
		t.Errorf("unknown role accepted: %s", out)
	}
	if out, err := run("init", "test"); err == nil || !strings.Contains(out, "already") {
		t.Errorf("second init overwrote the CA: %s", out)
	}
	out, err := run("list", "test")
	if err != nil || !regexp.MustCompile(`(?m)^ops\.pem +ops +internal +\d{4}-\d\d-\d\d$`).MatchString(out) || !strings.Contains(out, "flows-mediators") {
		t.Errorf("list: %v\n%s", err, out)
	}
	out, err = run("list", "test", "--output", "json")
	var certs []struct{ File, Role string }
	if err != nil || json.Unmarshal([]byte(out), &certs) != nil || len(certs) != 3 || certs[1].File != "ops.pem" || certs[1].Role != "internal" {
		t.Errorf("list --output json: %v %+v\n%s", err, certs, out)
	}
	if out, err := run("info", filepath.Join(dir, "server.pem")); err != nil || !strings.Contains(out, "mediator.example") {
		t.Errorf("info: %v\n%s", err, out)
	}
}
