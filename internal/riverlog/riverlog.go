// Package riverlog fits River's logging to an operator's log. River
// reports its routine at INFO ("Producer job counts" per queue every 5 s,
// elections, scheduler runs): an operator's log at INFO is for what Flows
// did to meters, so that goes to DEBUG. A job that errored for the last
// time (River discards it) goes to WARN and a panic to ERROR, where River
// reports both at INFO; a job error River will retry stays at DEBUG, as
// the work it belongs to reports its own failures (a sync's, a push's).
// A job cut short by a shutdown (its error a cancelled context) is work
// stopped on purpose: DEBUG. River's own warnings and errors pass
// unchanged.
package riverlog

import (
	"context"
	"log/slog"
	"strings"
)

// Logger is base for a River client: records marked library=river (the
// component, if base names one, kept as it is).
func Logger(base *slog.Logger) *slog.Logger {
	return slog.New(handler{base.Handler()}).With("library", "river")
}

type handler struct{ inner slog.Handler }

func level(r slog.Record) slog.Level {
	if r.Level != slog.LevelInfo {
		return r.Level
	}
	switch {
	case strings.HasSuffix(r.Message, ": Job panicked"):
		return slog.LevelError
	case strings.HasSuffix(r.Message, ": Job errored") && cancelled(r):
		// Cut short by a shutdown (its context cancelled): work stopped
		// on purpose, resumed by the next start, not a failure.
		return slog.LevelDebug
	case strings.HasSuffix(r.Message, ": Job errored"): // attempts exhausted: discarded
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool {
	// The message decides the level, so any level River asks at may be
	// wanted: the real check is in Handle.
	return l == slog.LevelInfo || h.inner.Enabled(ctx, l)
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = level(r)
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	if r.Level == slog.LevelWarn && strings.HasSuffix(r.Message, ": Job errored") {
		// River's words do not say the job is over: it is, and discarded.
		r.Message = "job failed on its last attempt and is discarded (" + r.Message + ")"
	}
	return h.inner.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.inner.WithAttrs(as)} }

func (h handler) WithGroup(name string) slog.Handler { return handler{h.inner.WithGroup(name)} }

// cancelled reports whether r's error is a context cancelled.
func cancelled(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && strings.Contains(a.Value.String(), context.Canceled.Error()) {
			found = true
			return false
		}
		return true
	})
	return found
}
