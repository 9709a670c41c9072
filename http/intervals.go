package http

import (
	"bytes"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/smip"
)

// Default ranges of the intervals API: the previous complete UTC day of
// half hours, the last 30 complete UTC days of days.
const (
	defaultHalfHourSpan = 24 * time.Hour
	defaultDaySpan      = 30 * 24 * time.Hour
)

// intervalRange reads bucket, from and to. from and to are RFC 3339
// instants or UTC days (YYYY-MM-DD): a day as from is its midnight, as
// to its end (to=2026-03-07 includes the 7th), so a range of days reads
// as it is written; the range is [from, to) in the answer. With one
// end given the other is the bucket's default span away; with neither, the
// default range ends at today's UTC midnight. EINVALID naming the
// parameter; the store checks the bucket boundaries and the longest span.
func intervalRange(q url.Values, now time.Time) (from, to time.Time, bucket flows.Bucket, err error) {
	bucket, span, step := flows.BucketHalfHour, defaultHalfHourSpan, 30*time.Minute
	switch b := q.Get("bucket"); b {
	case "", string(flows.BucketHalfHour):
	case string(flows.BucketDay):
		bucket, span, step = flows.BucketDay, defaultDaySpan, 24*time.Hour
	default:
		return from, to, "", flows.FieldError("bucket", "%q is not hh or day", b)
	}
	fromSet, toSet := q.Get("from") != "", q.Get("to") != ""
	if fromSet {
		if from, err = instantOrDay("from", q.Get("from"), false); err != nil {
			return
		}
	}
	if toSet {
		if to, err = instantOrDay("to", q.Get("to"), true); err != nil {
			return
		}
	}
	switch {
	case !fromSet && !toSet:
		to = flows.UTCDay(now)
		from = to.Add(-span)
	case !toSet:
		to = from.Add(span)
	case !fromSet: // on the bucket's boundary: a bad to is named as to
		from = to.Add(-span).Truncate(step)
	}
	return from.UTC(), to.UTC(), bucket, nil
}

// instantOrDay parses an RFC 3339 instant or a UTC day; a day ending a
// range stands for its end (the next midnight).
func instantOrDay(field, v string, end bool) (time.Time, error) {
	if len(v) == len(flows.DayLayout) {
		d, err := flows.ParseDay(field, v)
		if err == nil && end {
			d = d.Add(24 * time.Hour)
		}
		return d, err
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, flows.FieldError(field, "%q is not an RFC 3339 time or a day (YYYY-MM-DD)", v)
	}
	return t, nil
}

// intervals serves a meter's consumption per half hour or UTC day, with
// its completeness.
func (s *Server) intervals(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	from, to, bucket, err := intervalRange(r.URL.Query(), s.cfg.Now())
	if err != nil {
		return err
	}
	pts, err := s.cfg.Store.Intervals(r.Context(), m.ID, from, to, bucket)
	if err != nil {
		return err
	}
	comp, err := s.meterCompleteness(r.Context(), m.ID)
	if err != nil {
		return err
	}
	if pts == nil {
		pts = []flows.IntervalPoint{}
	}
	writeJSON(w, http.StatusOK, intervalSeries{Serial: m.Serial, Bucket: bucket, From: from, To: to, Completeness: comp, Points: pts})
	return nil
}

// intervalsCSV serves one UTC day of a meter element's profile as the
// SMIP file flows export smip writes for it.
func (s *Server) intervalsCSV(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	return s.writeSMIP(w, r, m)
}

// writeSMIP writes the SMIP file of the day (default: yesterday, UTC) and
// element the query names, byte for byte what flows export smip writes:
// the element is required on a twin-element meter (smip.Element).
// EINVALID naming day or element.
func (s *Server) writeSMIP(w http.ResponseWriter, r *http.Request, m *flows.Meter) error {
	if emop.IsThreePhase(m.Hardware) {
		// Its half hours are in its interval profile, not the profile
		// logs a SMIP file is made from: 48 rows of NA would say nothing.
		return flows.Errorf(flows.ECONFLICT, "meter %s is a three-phase meter (%s): it has no SMIP file; its interval files: flows export intervals --serial %s",
			m.Serial, m.Hardware, m.Serial)
	}
	q := r.URL.Query()
	twin := emop.IsTwinElement(m.Hardware)
	element, err := smip.Element(q.Get("element"), twin)
	if err != nil {
		return err
	}
	day, err := pastDay(q.Get("day"), s.cfg.Now())
	if err != nil {
		return err
	}
	readings, err := s.cfg.Store.SMIPDay(r.Context(), m.ID, element, day)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := smip.WriteDay(&buf, smip.Name(m.Serial, element, twin), readings); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": smip.FileName(m.Serial, element, twin, day)}))
	w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(w)
	return nil
}

// pastDay reads a "day" parameter: a UTC day not after today (today is
// partial), yesterday when empty. EINVALID naming day.
func pastDay(v string, now time.Time) (time.Time, error) {
	today := flows.UTCDay(now)
	if v == "" {
		return today.AddDate(0, 0, -1), nil
	}
	d, err := flows.ParseDay("day", v)
	if err != nil {
		return d, err
	}
	if d.After(today) {
		return d, flows.FieldError("day", "%s is in the future", v)
	}
	return d, nil
}
