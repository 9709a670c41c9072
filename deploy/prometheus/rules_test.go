// Package prometheus holds the alerting rules shipped for Prometheus
// (flows-alerts.yml) and their test; it has no Go code of its own.
package prometheus_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/aptget"
)

// The shipped alerting rules load and behave as their tests say
// (promtool test rules: each alert pending, firing and resolved at the
// minutes given, with its labels and text), and name only metrics Flows
// exports.
func TestShippedAlertingRules(t *testing.T) {
	rules, err := os.ReadFile("flows-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exported, err := os.ReadFile("../../http/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`flows_[a-z_]+`).FindAllString(string(rules), -1) {
		if !strings.Contains(string(exported), `"`+name+`"`) {
			t.Errorf("the rules name %s, which Flows does not export", name)
		}
	}
	promtool := aptget.Program(t, "prometheus", "/usr/bin/promtool")
	if out, err := exec.Command(promtool, "check", "rules", "flows-alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	out, err := exec.Command(promtool, "test", "rules", "flows-alerts_test.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
