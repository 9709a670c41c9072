package syncer

import (
	"context"
	"log/slog"
)

// riverHandler demotes River's INFO records to DEBUG. River reports its
// routine at INFO ("Producer job counts" per queue every 5 s, elections,
// scheduler runs); an operator's log at INFO is for what Flows did to
// meters. Its warnings and errors pass unchanged.
type riverHandler struct{ inner slog.Handler }

func (h riverHandler) level(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

func (h riverHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, h.level(l))
}

func (h riverHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = h.level(r.Level)
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h riverHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return riverHandler{h.inner.WithAttrs(as)}
}

func (h riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{h.inner.WithGroup(name)}
}
