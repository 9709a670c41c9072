package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// flows serve refuses bad partition flags at start, naming the flag and
// the value; with good ones it makes the history partitions ahead as
// asked.
func TestServePartitionFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--partitions-ahead", "0"}, "flows: --partitions-ahead: 0 is not between 1 and 120"},
		{[]string{"--retention", "meter_event_log=3"}, `flows: --retention: "meter_event_log=3": "meter_event_log" is not a partitioned table`},
		{[]string{"--retention", "meter_csq"}, `flows: --retention: "meter_csq" is not TABLE=MONTHS`},
		{[]string{"--retention", "meter_csq=many"}, `flows: --retention: "meter_csq=many": "many" is not a whole number of months`},
		{[]string{"--retention", "meter_csq=-2"}, `flows: --retention: "meter_csq=-2": meter_csq: -2 months is negative`},
		{[]string{"--retention", "meter_csq=2", "--retention", "meter_csq=3"}, `flows: --retention: "meter_csq=3": meter_csq is given twice`},
		{[]string{"--log-level", "loud"}, `flows: --log-level: "loud" is not debug, info, warn or error`},
		{[]string{"--log-format", "xml"}, `flows: --log-format: "xml" is not text or json`},
		{[]string{"--mediator", "127.0.0.1:50051"}, "flows: --mediator: is where the sync and commands components reach meters; --components has neither"},
		{[]string{"--components", "sync", "--mediator", "med-a"}, `flows: --mediator: "med-a" is not HOST:PORT`},
		{[]string{"--components", "sync", "--mediator", "med-a:1,med-a:1"}, "flows: --mediator: med-a:1 is listed twice"},
	} {
		// No database is reached: the flags are refused first.
		args := append([]string{"serve", "--components", "mediator", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, c.args...)
		out, err := exec.Command(flowsBin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "Usage: flows serve") {
			t.Errorf("serve %v: %v\n%s\nwant a usage error (exit 2) saying %q", c.args, err, out, c.want)
		}
	}

	url := pgtest.NewDB(t)
	cmd := exec.Command(flowsBin, "serve", "--components", "mediator", "--grpc", "127.0.0.1:0", "--database-url", url,
		"--partitions-ahead", "6", "--retention", "meter_csq=24", "--log-format", "json")
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Migrations make three months ahead; the flag asks for six.
	now := time.Now().UTC()
	want := "meter_csq_p" + time.Date(now.Year(), now.Month()+6, 1, 0, 0, 0, 0, time.UTC).Format("200601")
	made := func() bool {
		var ok bool
		return conn.QueryRow(ctx, `SELECT to_regclass('flows.' || $1) IS NOT NULL`, want).Scan(&ok) == nil && ok
	}
	logged := func() bool { return strings.Contains(buf.String(), "history partitions maintained") }
	for deadline := time.Now().Add(30 * time.Second); !(made() && logged()) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !made() {
		t.Fatalf("no partition %s after serve --partitions-ahead 6:\n%s", want, buf.String())
	}
	if !logged() {
		t.Errorf("serve did not log the partitions it made:\n%s", buf.String())
	}
	// --log-format json: each log line is one JSON object.
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "history partitions maintained") {
			var rec struct{ Level, Msg string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != "INFO" {
				t.Errorf("--log-format json logged %q (%v), want a JSON object at INFO", line, err)
			}
		}
	}
}
