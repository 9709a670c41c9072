package riverlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// River's routine INFO stays out of an INFO log, as does a job cut short
// by a shutdown; a job given up after its last attempt and a panic show,
// and its warnings do; each record names
// the component once and River as the library.
func TestRiverRoutineIsDebugItsFailuresAreNot(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "alerts"))
	log.Info("producer: Producer job counts", "queue", "sync_group")
	log.Info("jobexecutor.JobExecutor: Job errored; retrying", "job_kind", "alert_delivery")
	log.Info("jobexecutor.JobExecutor: Job errored", "job_kind", "alert_delivery", "error", "receiver answered 503")
	log.Info("jobexecutor.JobExecutor: Job errored", "job_kind", "flows_profile_backfill", "error", "profile backfill of EML2200001033: read: context canceled")
	log.Info("jobexecutor.JobExecutor: Job panicked", "job_kind", "flows_sync_meter")
	log.Warn("producer: Error fetching jobs")
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Count(line, `"component"`) != 1 || !strings.Contains(line, `"library":"river"`) {
			t.Errorf("record %s: want one component and library=river", line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, rec["level"].(string)+" "+rec["msg"].(string))
	}
	want := []string{"WARN job failed on its last attempt and is discarded (jobexecutor.JobExecutor: Job errored)", "ERROR jobexecutor.JobExecutor: Job panicked", "WARN producer: Error fetching jobs"}
	if strings.Join(levels, "\n") != strings.Join(want, "\n") {
		t.Errorf("INFO log:\n%s\nwant\n%s", strings.Join(levels, "\n"), strings.Join(want, "\n"))
	}
	buf.Reset()
	log = Logger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.Info("producer: Producer job counts")
	if !strings.Contains(buf.String(), "level=DEBUG") {
		t.Errorf("DEBUG log: %q, want River's routine at DEBUG", buf.String())
	}
}
