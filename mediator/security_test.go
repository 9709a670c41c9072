package mediator_test

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// logRecorder keeps every log record, for tests of what is logged.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// has says whether a record at level has a message containing every part.
func (h *logRecorder) has(level slog.Level, parts ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
next:
	for _, r := range h.recs {
		if r.Level != level {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(r.Message, p) {
				continue next
			}
		}
		return true
	}
	return false
}

// issueCerts makes a CA, the server's certificate and an internal (ops)
// and a partner (partnerco) client; it returns the directory and the
// server's mutual-TLS configuration.
func issueCerts(t *testing.T) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	if err := mediator.InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"server", ""}, {"ops", "internal"}, {"partnerco", "partner"}} {
		if err := mediator.Issue(dir, c[0], c[1], nil); err != nil {
			t.Fatal(err)
		}
	}
	stls, err := mediator.ServerTLS(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, stls
}

func clientTLS(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	c, err := mediator.ClientTLS(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type auditRow struct{ MeterID, Kind, By, Object, Value, Outcome, Detail string }

func auditRows(t *testing.T, store *postgres.Store) []auditRow {
	t.Helper()
	rows, err := store.Pool().Query(context.Background(), `SELECT meter_id::text, request_kind, coalesce(requested_by, ''), object,
		coalesce(value, ''), outcome, coalesce(detail, '') FROM flows.meter_write_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.MeterID, &r.Kind, &r.By, &r.Object, &r.Value, &r.Outcome, &r.Detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func meterID(t *testing.T, store *postgres.Store, serial string) string {
	t.Helper()
	m, err := store.MeterBySerial(context.Background(), serial)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// A mediator limited to ESCO AAA tells nothing of BBB's meters: GetMeters
// refuses BBB as it refuses an ESCO that does not exist, GetInfo and the
// relay answer for a BBB meter as for a serial never registered, and a
// meter moved between the two is served or not as soon as the registry
// says so.
func TestESCOScope(t *testing.T) {
	r := newRigWith(t, rigOptions{n: 6, prefix: "127.87", transport: meterconn.Config{Attempts: 1}, escos: []string{"AAA", "BBB"}, serve: "aaa"})
	c := dial(t, r.server.Addr(), nil)
	ctx := context.Background()
	ms := r.fleet.Meters()
	var aaa, bbb []string // meters alternate AAA, BBB
	for i, m := range ms {
		if i%2 == 0 {
			aaa = append(aaa, m.Spec.Serial)
		} else {
			bbb = append(bbb, m.Spec.Serial)
		}
	}

	var refusals []string
	for _, esco := range []string{"BBB", "bbb", "NOPE"} {
		_, err := c.Meters(ctx, esco)
		if flows.ErrorCode(err) != flows.EFORBIDDEN || !strings.Contains(err.Error(), "only ESCO aaa") {
			t.Errorf("GetMeters{esco: %q} = %v, want PERMISSION_DENIED naming this mediator's ESCO", esco, err)
		} else {
			refusals = append(refusals, err.Error())
		}
	}
	if len(refusals) == 3 && (refusals[0] != refusals[2] || strings.Contains(refusals[0], "BBB")) {
		t.Errorf("refusals tell BBB (exists) from NOPE (does not): %q", refusals)
	}
	for _, esco := range []string{"", "AAA"} {
		list, err := c.Meters(ctx, esco)
		if err != nil {
			t.Fatalf("GetMeters{esco: %q}: %v", esco, err)
		}
		for _, s := range aaa {
			if !strings.Contains(list, s) {
				t.Errorf("GetMeters{esco: %q} misses AAA's %s", esco, s)
			}
		}
		for _, s := range bbb {
			if strings.Contains(list, s) {
				t.Errorf("GetMeters{esco: %q} lists BBB's %s", esco, s)
			}
		}
	}

	const unknown = "EML9999999999"
	same := func(what string, other, unknownErr error, serial string) {
		t.Helper()
		if flows.ErrorCode(other) != flows.ENOTFOUND || other.Error() != strings.ReplaceAll(unknownErr.Error(), unknown, serial) {
			t.Errorf("%s of BBB's %s: %v; want what an unknown serial gets: %v", what, serial, other, unknownErr)
		}
	}
	if _, err := c.Info(ctx, aaa[0]); err != nil {
		t.Fatalf("GetInfo of AAA's meter: %v", err)
	}
	_, infoUnknown := c.Info(ctx, unknown)
	_, infoOther := c.Info(ctx, bbb[0])
	same("GetInfo", infoOther, infoUnknown, bbb[0])

	_, readUnknown := c.Read(ctx, meterconn.Target{Serial: unknown}, emop.ObjCSQ)
	_, readOther := c.Read(ctx, meterconn.Target{Serial: bbb[0]}, emop.ObjCSQ)
	same("readElement", readOther, readUnknown, bbb[0])
	writeUnknown := c.Write(ctx, meterconn.Target{Serial: unknown}, emop.ObjBacklight, []byte{1})
	writeOther := c.Write(ctx, meterconn.Target{Serial: bbb[0]}, emop.ObjBacklight, []byte{1})
	same("writeElement", writeOther, writeUnknown, bbb[0])
	_, rawUnknown := c.Raw(ctx, meterconn.Target{Serial: unknown}, emop.ReadRequest(emop.ObjCSQ))
	_, rawOther := c.Raw(ctx, meterconn.Target{Serial: bbb[0]}, emop.ReadRequest(emop.ObjCSQ))
	same("sendRawMessage", rawOther, rawUnknown, bbb[0])
	if _, err := c.Read(ctx, meterconn.Target{Serial: aaa[0]}, emop.ObjCSQ); err != nil {
		t.Errorf("read of AAA's meter: %v", err)
	}
	if rows := auditRows(t, r.store); len(rows) != 0 {
		t.Errorf("refused writes were audited: %+v", rows)
	}

	// Moving meters between ESCOs: AAA's leaves the served set, BBB's joins it.
	leaving, joining := aaa[1], bbb[1]
	if _, err := c.Read(ctx, meterconn.Target{Serial: leaving}, emop.ObjCSQ); err != nil {
		t.Fatalf("read of AAA's %s before the move: %v", leaving, err)
	}
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registry SET esco = (SELECT id FROM flows.escos WHERE code = $2) WHERE serial = $1`, leaving, "BBB"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registry SET esco = (SELECT id FROM flows.escos WHERE code = $2) WHERE serial = $1`, joining, "AAA"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx, leaving); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("GetInfo of a meter moved to BBB: %v, want NOT_FOUND at once", err)
	}
	var leftErr, joinErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, leftErr = c.Read(ctx, meterconn.Target{Serial: leaving}, emop.ObjCSQ)
		_, joinErr = c.Read(ctx, meterconn.Target{Serial: joining}, emop.ObjCSQ)
		if flows.ErrorCode(leftErr) == flows.ENOTFOUND && joinErr == nil {
			break
		}
	}
	if flows.ErrorCode(leftErr) != flows.ENOTFOUND {
		t.Errorf("a meter moved to BBB is still served: read %v", leftErr)
	}
	if joinErr != nil {
		t.Errorf("a meter moved to AAA is not served: %v", joinErr)
	}
}

// Every write relayed is audited: who (unauthenticated without mutual TLS),
// which object, the value (a token redacted) and how it went; reads are
// not, raw writes are, and a raw message that is not a known read is
// audited whole.
func TestWriteAudit(t *testing.T) {
	r := newRig(t, 3, "127.88", meterconn.Config{Attempts: 1}, nil)
	c := dial(t, r.server.Addr(), nil)
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	tg := meterconn.Target{Serial: m.Spec.Serial}
	id := meterID(t, r.store, m.Spec.Serial)
	two := decimal.NewFromInt(2)

	if err := c.Write(ctx, tg, emop.ObjBacklight, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, tg, emop.ObjBacklight); err != nil {
		t.Fatal(err)
	}
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, two)
	if err := c.Write(ctx, tg, emop.ObjTokenSend, []byte(tok)); err != nil {
		t.Fatal(err)
	}
	var nak *emop.NakError
	if err := c.Write(ctx, tg, emop.ObjTokenSend, []byte(tok)); !errors.As(err, &nak) {
		t.Fatalf("replayed token: %v, want a NAK", err)
	}
	tok2, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, two)
	if _, err := c.Raw(ctx, tg, emop.WriteRequest(emop.ObjTokenSend, []byte(tok2))); err != nil {
		t.Fatalf("raw token write: %v", err)
	}
	if _, err := c.Raw(ctx, tg, emop.ReadRequest(emop.ObjCSQ)); err != nil {
		t.Fatal(err)
	}
	evReq, _ := emop.EventLogRequest(0)
	if _, err := c.Raw(ctx, tg, evReq); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Raw(ctx, tg, []byte{0x07, 0x01}); !errors.As(err, &nak) {
		t.Fatalf("raw message of an unknown format: %v, want a NAK", err)
	}

	rows := auditRows(t, r.store)
	want := []auditRow{
		{id, "mediator", "unauthenticated", "backlight", "01", "ok", ""},
		{id, "mediator", "unauthenticated", "prepay_token_send", emop.RedactToken(tok), "ok", ""},
		{id, "mediator", "unauthenticated", "prepay_token_send", emop.RedactToken(tok), "nak", "NAK 6 (" + emop.NakMeaning(6) + ")"},
		{id, "mediator", "unauthenticated", "prepay_token_send", emop.RedactToken(tok2), "ok", ""},
		{id, "mediator", "unauthenticated", "raw", "0701", "nak", "NAK 2 (" + emop.NakMeaning(2) + ")"},
	}
	if len(rows) != len(want) {
		t.Fatalf("audit rows:\n%+v\nwant:\n%+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("audit row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	var dump string
	if err := r.store.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(row_to_json(a)::text, E'\n'), '') FROM flows.meter_write_audit a`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tok, tok2, hex.EncodeToString([]byte(tok)), hex.EncodeToString([]byte(tok2)), tok[:16], tok2[:16]} {
		if strings.Contains(dump, secret) {
			t.Errorf("the audit holds a token (%s):\n%s", secret, dump)
		}
	}
}

// With mutual TLS, the audit names the certificate; a write the caller's
// role may not make reaches neither the meter nor the audit.
func TestWriteAuditMutualTLS(t *testing.T) {
	dir, stls := issueCerts(t)
	r := newRig(t, 2, "127.89", meterconn.Config{Attempts: 1}, stls)
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	tg := meterconn.Target{Serial: m.Spec.Serial}
	if err := dial(t, r.server.Addr(), clientTLS(t, dir, "ops")).Write(ctx, tg, emop.ObjBacklight, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := dial(t, r.server.Addr(), clientTLS(t, dir, "partnerco")).Write(ctx, tg, emop.ObjBacklight, []byte{0}); err == nil {
		t.Fatal("a partner wrote")
	}
	rows := auditRows(t, r.store)
	want := auditRow{meterID(t, r.store, m.Spec.Serial), "mediator", "CN=ops,OU=internal", "backlight", "02", "ok", ""}
	if len(rows) != 1 || rows[0] != want {
		t.Errorf("audit rows %+v, want [%+v]", rows, want)
	}
}

// auditFails is a store whose audit log cannot be written.
type auditFails struct{ *postgres.Store }

func (auditFails) Audit(context.Context, flows.AuditEntry) error {
	return errors.New("audit table unavailable")
}

// A write whose audit row cannot be recorded still answers as the meter
// did, and the loss is logged at error level.
func TestAuditFailureIsLogged(t *testing.T) {
	logs := &logRecorder{}
	r := newRigWith(t, rigOptions{n: 1, prefix: "127.90", transport: meterconn.Config{Attempts: 1}, logger: slog.New(logs),
		wrap: func(s *postgres.Store) mediator.Store { return auditFails{s} }})
	c := dial(t, r.server.Addr(), nil)
	if err := c.Write(context.Background(), meterconn.Target{Serial: r.fleet.Meters()[0].Spec.Serial}, emop.ObjBacklight, []byte{1}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if !logs.has(slog.LevelError, "audit") {
		t.Errorf("the lost audit row was not logged at error level")
	}
}

// Without mutual TLS the mediator listens only on loopback, unless told
// Insecure; either way it warns that it is open.
func TestStartRefusesOpenAddress(t *testing.T) {
	store := postgres.NewStore(pgtest.NewPool(t))
	transport, err := meterconn.New(meterconn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := func(cfg mediator.Config) (*mediator.Server, *logRecorder, error) {
		logs := &logRecorder{}
		cfg.Store, cfg.Meters, cfg.Logger = store, transport, slog.New(logs)
		srv := mediator.New(cfg)
		err := srv.Start(ctx)
		if err == nil {
			t.Cleanup(func() { _ = srv.Stop(context.Background()) })
		}
		return srv, logs, err
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.1.2.3:0", "flows.example:0"} {
		_, _, err := start(mediator.Config{Addr: addr})
		if err == nil || flows.ErrorField(err) != "--grpc" {
			t.Errorf("%s without TLS: %v, want a refusal naming --grpc", addr, err)
			continue
		}
		for _, flag := range []string{"--grpc-cert", "--grpc-key", "--grpc-ca", "--grpc-insecure"} {
			if !strings.Contains(err.Error(), flag) {
				t.Errorf("%s refused without saying %s: %v", addr, flag, err)
			}
		}
	}
	for _, cfg := range []mediator.Config{{Addr: "0.0.0.0:0", Insecure: true}, {Addr: "127.0.0.1:0"}, {Addr: "localhost:0"}} {
		srv, logs, err := start(cfg)
		if err != nil {
			t.Errorf("%+v: %v", cfg, err)
			continue
		}
		if !logs.has(slog.LevelWarn, "anyone who can reach "+srv.Addr(), "prepay_token_send") {
			t.Errorf("%s served without mutual TLS and no warning", srv.Addr())
		}
	}
	_, stls := issueCerts(t)
	srv, logs, err := start(mediator.Config{Addr: "0.0.0.0:0", TLS: stls})
	if err != nil {
		t.Fatalf("mutual TLS on 0.0.0.0: %v", err)
	}
	if logs.has(slog.LevelWarn, "anyone who can reach") {
		t.Errorf("%s with mutual TLS warned it is open", srv.Addr())
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051": true, "127.8.9.10:1": true, "[::1]:1": true, "localhost:1": true, "LocalHost:0": true,
		"[::ffff:127.0.0.1]:1": true,
		"0.0.0.0:50051":        false, ":50051": false, "[::]:1": false, "10.0.0.1:1": false, "128.0.0.1:1": false,
		"localhost.evil.example:1": false, "[fe80::1%lo]:1": false, "127.0.0.1": false, "": false,
	} {
		if got := mediator.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
