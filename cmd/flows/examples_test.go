package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
)

// flowsExamples walks flows's commands by their --help and returns every
// example line ("flows …").
func flowsExamples(t *testing.T, path ...string) []string {
	t.Helper()
	b, err := exec.Command(flowsBin, append(path, "--help")...).Output()
	if err != nil {
		t.Fatalf("flows %v --help: %v", path, err)
	}
	var found []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			section = line
		case section == "Examples:" && strings.HasPrefix(strings.TrimSpace(line), "flows "):
			found = append(found, strings.TrimSpace(line))
		case section == "Available Commands:" && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "   "): // deeper: a long name's summary, on its own line
			if sub := strings.Fields(line)[0]; sub != "help" {
				found = append(found, flowsExamples(t, append(append([]string(nil), path...), sub)...)...)
			}
		}
	}
	return found
}

// readmeExamples are the flows command lines of the README's code blocks
// (a "# …" comment after one dropped).
func readmeExamples(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	block := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			block = !block
			continue
		}
		if line, _, _ = strings.Cut(line, " #"); block && strings.HasPrefix(line, "flows ") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) < 3 {
		t.Fatalf("%d flows command lines in the README's code blocks; want its db examples at least", len(out))
	}
	return out
}

// Every example flows's --help and the README's code blocks give runs as written, in a directory and
// a database set up as its words assume ($FLOWS_DATABASE_URL, an ESCO
// WLCE, the demo's meters EML2137580826 and the three-phase
// EML2200001022, a meters.json, a fleet.json, ~ a home of its own), in an
// order that lets each find what the one before made (certs init before
// the certificates it signs; a grant before its revoke). One that serves
// (serve, sim --listen) must still be running after 3 s, and is stopped.
// The benchmarks and the demo start PostgreSQL clusters of their own and
// run for minutes: their examples are run by the bench tests and
// TestDemoEndToEnd, not here.
func TestEveryHelpExampleRuns(t *testing.T) {
	url := pgtest.EmptyDB(t)
	home, work := t.TempDir(), t.TempDir()
	// The serve example's environment as the README gives it.
	env := append(os.Environ(), "FLOWS_DATABASE_URL="+url, "HOME="+home, "FLOWS_JWT_SECRET=an-example-secret-of-32-characters!")
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(flowsBin, args...)
		cmd.Dir, cmd.Env = work, env
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(b), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(b), 0
	}
	if out, code := run("migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	for _, q := range []string{
		`INSERT INTO flows.escos (code, name) VALUES ('WLCE', 'Water Lilies')`,
	} {
		if b, err := exec.Command("psql", url, "-Xqc", q).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", q, err, b)
		}
	}
	files := map[string]string{
		"meters.json": `{"meters": [{"serial": "EML2137580826", "ip_address": "127.77.0.1", "port": 8080, "hardware": "EMA1.w"},
			{"serial": "EML2200001022", "ip_address": "127.77.0.23", "port": 8080, "hardware": "P1.cx", "layout": "three_phase"}]}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	examples := append(flowsExamples(t), readmeExamples(t)...)
	first := []string{"flows migrate", "flows meter import", "flows certs init", "flows certs server", "flows certs client", "flows certs info", "flows sim --meters", "flows db grant"}
	rank := func(e string) int {
		for i, p := range first {
			if strings.HasPrefix(e, p) {
				return i
			}
		}
		if strings.HasPrefix(e, "flows db revoke") {
			return len(first) + 1
		}
		return len(first)
	}
	slices.SortStableFunc(examples, func(a, b string) int { return rank(a) - rank(b) })
	ran := 0
	for _, e := range examples {
		if strings.HasPrefix(e, "flows bench") || strings.HasPrefix(e, "flows demo") {
			continue
		}
		var args []string
		for _, w := range strings.Fields(e)[1:] {
			w = strings.ReplaceAll(os.Expand(w, func(k string) string {
				if k == "FLOWS_DATABASE_URL" {
					return url
				}
				return os.Getenv(k)
			}), "~", home)
			if w == "postgres://flows@db/flows" {
				w = url // the example's database host is the reader's
			}
			args = append(args, w)
		}
		ran++
		if args[0] == "serve" || slices.Contains(args, "--listen") {
			// Serving: still up after 3 s, then stopped.
			if args[0] == "sim" {
				args = append(args, "--listen", "127.84:0") // the demo's addresses may be taken here
			} else {
				args = append(args, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, flowsBin, args...)
			cmd.Dir, cmd.Env = work, env
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				t.Errorf("%s: exited within 3 s (%v)\n%s", e, err, out.String())
			case <-time.After(3 * time.Second):
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-done
			}
			cancel()
			continue
		}
		if out, code := run(args...); code != 0 {
			t.Errorf("%s: exit %d\n%s", e, code, out)
		}
	}
	if ran < 25 {
		t.Errorf("ran %d examples; want every quick one (over 25)", ran)
	}
}

// A database that cannot be reached is said once, with what to check; a
// file that is not there is named, not called an internal error.
func TestFailuresSayWhatToDo(t *testing.T) {
	out, err := exec.Command(flowsBin, "meter", "list", "--database-url", "postgres://flows@127.0.0.1:1/flows").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(string(out), "connection refused") != 1 ||
		!strings.Contains(string(out), "is PostgreSQL running") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("database down: %v\n%s\nwant exit 1 and one line naming the refusal once and what to check", err, out)
	}
	out, err = exec.Command(flowsBin, "certs", "info", "/nonexistent/server.pem").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.TrimSpace(string(out)) != "flows: open /nonexistent/server.pem: no such file or directory" {
		t.Errorf("certs info of a missing file: %v %q", err, out)
	}
}
