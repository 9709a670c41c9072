package http

import (
	"bytes"
	"encoding/csv"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flows-energy/flows"
)

// maxReportSpan is the longest period a self-disconnection report covers
// at once (a year and a day: a year's report whatever the leap).
const maxReportSpan = 367 * 24 * time.Hour

// reportRange reads a report's from and to (RFC 3339 instants or UTC
// days, a day as to meaning its end): by default the last 30 UTC days to
// today's end. EINVALID naming the parameter.
func reportRange(r *http.Request, now time.Time) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = flows.UTCDay(now).Add(24 * time.Hour)
	if v := q.Get("to"); v != "" {
		if to, err = instantOrDay("to", v, true); err != nil {
			return
		}
	}
	from = to.Add(-30 * 24 * time.Hour)
	if v := q.Get("from"); v != "" {
		if from, err = instantOrDay("from", v, false); err != nil {
			return
		}
	}
	switch {
	case !from.Before(to):
		err = flows.FieldError("from", "%s is not before to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	case to.Sub(from) > maxReportSpan:
		err = flows.FieldError("to", "the report covers at most 367 days; from %s to %s is %d days",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), int(to.Sub(from).Hours()/24))
	}
	return from.UTC(), to.UTC(), err
}

// disconnectionReport is the report for the request's range and the
// caller's ESCO.
func (s *Server) disconnectionReport(r *http.Request, c *Claims) (*flows.SelfDisconnectionReport, error) {
	from, to, err := reportRange(r, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.SelfDisconnectionReport(r.Context(), from, to, scopeESCO(r, c))
}

// selfDisconnections serves the self-disconnection report of the caller's
// ESCO (an admin's: esco=, or every ESCO) for a period.
func (s *Server) selfDisconnections(w http.ResponseWriter, r *http.Request, c *Claims) error {
	rep, err := s.disconnectionReport(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// selfDisconnectionsCSV serves the same report's periods as CSV, a row
// each, for a spreadsheet or a regulator's return.
func (s *Server) selfDisconnectionsCSV(w http.ResponseWriter, r *http.Request, c *Claims) error {
	rep, err := s.disconnectionReport(r, c)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	writeDisconnectionsCSV(&buf, rep)
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": disconnectionsFileName(rep)}))
	w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(w)
	return nil
}

// writeDisconnectionsCSV writes a report's periods: serial, name, start,
// end (empty while still off supply), hours (whole length, to now for one
// still going) and source.
func writeDisconnectionsCSV(buf *bytes.Buffer, rep *flows.SelfDisconnectionReport) {
	cw := csv.NewWriter(buf)
	_ = cw.Write([]string{"serial", "name", "started_at", "ended_at", "hours", "source"})
	for _, p := range rep.Periods {
		end := ""
		if p.EndedAt != nil {
			end = p.EndedAt.Format(time.RFC3339)
		}
		_ = cw.Write([]string{p.Serial, p.Name, p.StartedAt.Format(time.RFC3339), end,
			strconv.FormatFloat(float64(p.Seconds)/3600, 'f', 2, 64), p.Source})
	}
	cw.Flush()
}

// disconnectionsFileName names a report's CSV by its ESCO and days.
func disconnectionsFileName(rep *flows.SelfDisconnectionReport) string {
	esco := rep.ESCO
	if esco == "" {
		esco = "all"
	}
	return "self-disconnections-" + esco + "-" + rep.From.Format("20060102") + "-" + rep.To.Add(-time.Nanosecond).Format("20060102") + ".csv"
}

// disconnectionsPage is the dashboard's self-disconnection report: the
// same report as the API, for the days chosen (the last 30 by default).
func (s *Server) disconnectionsPage(w http.ResponseWriter, r *http.Request, c *Claims) error {
	from, to, err := reportRange(r, s.cfg.Now())
	if err != nil {
		return err
	}
	esco := scopeESCO(r, c)
	rep, err := s.cfg.Store.SelfDisconnectionReport(r.Context(), from, to, esco)
	if err != nil {
		return err
	}
	v := url.Values{"from": {from.Format(flows.DayLayout)}, "to": {to.Add(-time.Nanosecond).Format(flows.DayLayout)}}
	if esco != "" && c.ESCO == "" {
		v.Set("esco", esco)
	}
	s.render(w, http.StatusOK, "disconnections", struct {
		page
		Report         *flows.SelfDisconnectionReport
		FromDay, ToDay string
		CSV            string
	}{page{Title: "Self-disconnections", Claims: c}, rep, v.Get("from"), v.Get("to"), "/reports/self-disconnections.csv?" + v.Encode()})
	return nil
}
