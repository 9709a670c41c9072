package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flows-energy/flows/sim"
)

// helpExamples walks emop's commands by their --help and returns every
// example line ("emop …"), with the command it documents.
func helpExamples(t *testing.T, path ...string) map[string][]string {
	t.Helper()
	out, _, err := runEmop(t, append(path, "--help")...)
	if err != nil {
		t.Fatalf("emop %v --help: %v", path, err)
	}
	found := map[string][]string{}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			section = line
		case section == "Examples:" && strings.HasPrefix(strings.TrimSpace(line), "emop "):
			name := strings.Join(path, " ")
			found[name] = append(found[name], strings.TrimSpace(line))
		case section == "Available Commands:" && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "   "): // deeper: a long name's summary, on its own line
			sub := strings.Fields(line)[0]
			if sub == "help" || sub == "completion" {
				continue
			}
			for k, v := range helpExamples(t, append(append([]string(nil), path...), sub)...) {
				found[k] = append(found[k], v...)
			}
		}
	}
	return found
}

// Every example emop's --help gives runs as written against the demo's
// meters (here a simulated fleet generated as the demo's is, its
// addresses put for the demo's, $MEDIATOR_SERVER set as env_set leaves
// it): each exits 0, or, for writes refused for what they carry, exits 1
// saying why.
func TestEveryHelpExampleRuns(t *testing.T) {
	specs := sim.GenerateFleet(25, sim.FleetOptions{AddressPrefix: "127.86", Secret: []byte("examples")})
	fleet, addr, store := startMediatedFleet(t, specs)
	if _, err := store.CreateESCO(context.Background(), "WLCE", "Example ESCO"); err != nil {
		t.Fatal(err)
	}
	at := func(i int) string {
		m := fleet.Meters()[i]
		return m.Spec.IPAddress + ":" + strconv.Itoa(m.Spec.Port)
	}
	demo := map[string]string{"127.77.0.1:8080": at(0), "127.77.0.23:8080": at(22)}
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "emlite.prod.env"), []byte("MEDIATOR_SERVER="+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What each write a meter (or Flows for it) refuses says: a made-up
	// token, the balance written raw, prepay mode on a meter under £10.
	refusedOK := map[string]string{"prepay_send_token": "refused", "obis_write": "refused", "prepay_enabled_write": "add more credit"}
	examples := helpExamples(t)
	n := 0
	for cmdName, lines := range examples {
		for _, line := range lines {
			var args []string
			for _, w := range strings.Fields(line)[1:] {
				if a, ok := demo[w]; ok {
					w = a
				}
				args = append(args, w)
				if len(args) >= 2 && args[len(args)-2] == "--direct" {
					args = append(args, "--gap", "0") // the simulator keeps no gap here
				}
			}
			cmd := exec.Command(emopBin, args...)
			cmd.Env = append(os.Environ(), "MEDIATOR_SERVER="+addr, "EMOP_HOME="+home)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			n++
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			why := refusedOK[strings.Fields(cmdName + " x")[0]]
			refused := code == 1 && why != "" && strings.Contains(stderr.String(), why)
			if code != 0 && !refused {
				t.Errorf("%s (%s): exit %d\n%s%s", line, strings.Join(args, " "), code, stdout.String(), stderr.String())
			}
		}
	}
	if n < 100 {
		t.Errorf("%d examples found in emop's help; want every command's (over 100)", n)
	}
}
