package syncer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// River's routine INFO stays out of an INFO log; its warnings do not.
func TestRiverRoutineIsDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(riverHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("component", "river")
	log.Info("producer: Producer job counts", "queue", "sync_group")
	log.Warn("producer: Error fetching jobs")
	out := buf.String()
	if strings.Contains(out, "Producer job counts") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "component=river") {
		t.Errorf("INFO log:\n%s", out)
	}
	buf.Reset()
	log = slog.New(riverHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log.Info("producer: Producer job counts")
	if !strings.Contains(buf.String(), "level=DEBUG") {
		t.Errorf("DEBUG log: %q, want River's routine at DEBUG", buf.String())
	}
}
