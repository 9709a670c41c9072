package mediator

import (
	"bytes"
	"context"
	"encoding/hex"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

// Every write the mediator relays is a row of flows.meter_write_audit:
// request kind "mediator", requested by the client certificate's subject
// (or "unauthenticated" without mutual TLS), the object's name and the
// payload in hex, a top-up token redacted.

// AuditKind is the request kind of the mediator's audit rows.
const AuditKind = "mediator"

// Unauthenticated is who asked, in the audit, when the mediator serves
// without mutual TLS.
const Unauthenticated = "unauthenticated"

// RawObject is the audit's object for a raw message the mediator cannot
// tell is a read; its value is the whole data field in hex.
const RawObject = "raw"

// auditTimeout bounds recording one write (after the meter answered).
const auditTimeout = 10 * time.Second

// audit records a relayed write and how it went. A failure to record is
// logged at error level; the caller still gets the meter's answer, which
// has already happened.
func (s *Server) audit(ctx context.Context, m flows.Meter, object, value string, err error) {
	outcome := "ok"
	switch meterconn.Classify(err) {
	case meterconn.FailureNone:
	case meterconn.FailureRefused:
		outcome = "nak"
	default:
		outcome = "error"
	}
	e := flows.AuditEntry{MeterID: m.ID, RequestKind: AuditKind, RequestedBy: requestedBy(ctx), Object: object,
		Value: value, Outcome: outcome, Detail: meterconn.Detail(err)}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if aerr := s.cfg.Store.Audit(actx, e); aerr != nil {
		s.cfg.Logger.Error("writing the audit log: a relayed write is not recorded", "meter_serial", m.Serial, "meter_id", m.ID,
			"object", object, "requested_by", e.RequestedBy, "outcome", outcome, "error", aerr)
	}
}

// requestedBy is the caller's certificate subject ("CN=ops,OU=internal"),
// or Unauthenticated without one.
func requestedBy(ctx context.Context) string {
	cert, err := clientCert(ctx)
	if err != nil {
		return Unauthenticated
	}
	who := "CN=" + cert.Subject.CommonName
	for _, ou := range cert.Subject.OrganizationalUnit {
		who += ",OU=" + ou
	}
	return who
}

// objectName is an object's name, or its hex id when unknown.
func objectName(id emop.ObjectID) string {
	if o, ok := emop.Lookup(id); ok {
		return o.Name
	}
	return id.String()
}

// auditValue is a written payload as the audit shows it: hex, except a
// token, of which only the last four digits are kept.
func auditValue(id emop.ObjectID, payload []byte) string {
	if o, ok := emop.Lookup(id); ok && o.Type == emop.TypeToken {
		if tok, err := emop.DecodeToken(payload); err == nil {
			return emop.RedactToken(tok)
		}
		return emop.RedactToken(hex.EncodeToString(payload))
	}
	return hex.EncodeToString(payload)
}

// rawWrite says whether a raw data field must be audited, and as what.
// Only requests known to read are not: a default-format read, an event-log
// or profile-log request, a three-phase interval request. A default-format
// write is audited as its object; anything else (another format, a
// malformed field) as RawObject with the whole field in hex, since what it
// does to a meter cannot be told.
func rawWrite(data []byte) (object, value string, write bool) {
	if rec, err := emop.ParseRecord(data); err == nil {
		if !rec.Write {
			return "", "", false
		}
		return objectName(rec.Object), auditValue(rec.Object, rec.Payload), true
	}
	if _, err := emop.ParseEventLogRequest(data); err == nil {
		return "", "", false
	}
	if _, _, err := emop.ParseProfileLogRequest(data); err == nil {
		return "", "", false
	}
	if isThreePhaseIntervalsRequest(data) {
		return "", "", false
	}
	return RawObject, hex.EncodeToString(data), true
}

// isThreePhaseIntervalsRequest recognises emop.ThreePhaseIntervalsRequest's
// layout: format · profile · start u32le · end u32le · ffffffff.
func isThreePhaseIntervalsRequest(data []byte) bool {
	return len(data) == 14 && data[0] == emop.FormatThreePhaseIv &&
		(data[1] == emop.ProfileZero || data[1] == emop.ProfileReset) &&
		bytes.Equal(data[10:], []byte{0xFF, 0xFF, 0xFF, 0xFF})
}
