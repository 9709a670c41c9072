package http

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/golang-jwt/jwt/v5"
	"github.com/shopspring/decimal"
)

// The dashboard: server-rendered pages (html/template) with two small
// scripts (charts drawn from data embedded in the page, and the tariff
// request table kept current). Its session is the API token, kept in an
// HttpOnly, SameSite=Strict cookie; form posts also check the Origin.
// Everything is embedded: it works with no internet access.

//go:embed dashboard
var dashboardRoot embed.FS

var dashboardFS, _ = fs.Sub(dashboardRoot, "dashboard")

const sessionCookie = "flows_session"

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"money": func(d *decimal.Decimal) string {
		if d == nil {
			return "–"
		}
		return "£" + d.StringFixed(2)
	},
	"money2": func(d decimal.Decimal) string { return "£" + d.StringFixed(2) },
	"dec": func(d *decimal.Decimal) string {
		if d == nil {
			return "–"
		}
		return d.String()
	},
	"intp": func(n *int) string {
		if n == nil {
			return "–"
		}
		return fmt.Sprint(*n)
	},
	"health": func(h *flows.Health) string {
		if h == nil {
			return "–"
		}
		return string(*h)
	},
	"time":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"hours":         func(seconds int64) string { return strconv.FormatFloat(float64(seconds)/3600, 'f', 1, 64) },
	"pct":           percent,
	"topupStatus":   topupStatus,
	"requestStatus": requestStatus,
	"auditKind":     auditKind,
	"auditOutcome":  auditOutcome,
	"auditValue":    auditValue,
	"activation":    activationText,
	// threePhase: a meter with no prepayment balance to read (emop.IsThreePhase).
	"threePhase": emop.IsThreePhase,
	// noflash is a page without its message: the error page shows the
	// message in its own place, not as a flash above it.
	"noflash": func(p page) page { p.Flash = ""; return p },
	"timep": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).ParseFS(dashboardFS, "templates/*.html"))

// page is what every page template gets.
type page struct {
	Title  string
	Claims *Claims
	Flash  string
}

func (s *Server) mountDashboard(mux *http.ServeMux) {
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(dashboardFS)))
	mux.HandleFunc("GET /{$}", s.dash(s.fleetPage))
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /meters/{serial}", s.dash(s.meterPage))
	mux.HandleFunc("GET /meters/{serial}/requests", s.dash(s.listFragment))
	mux.HandleFunc("GET /meters/{serial}/activity/{list}", s.dash(s.listFragment))
	mux.HandleFunc("GET /meters/{serial}/intervals.csv", s.dash(s.smipDownload))
	mux.HandleFunc("POST /meters/{serial}/tariff", s.dash(s.meterForm(s.tariffForm)))
	mux.HandleFunc("POST /meters/{serial}/token", s.dash(s.meterForm(s.tokenForm)))
	mux.HandleFunc("POST /meters/{serial}/sync", s.dash(s.meterForm(s.syncForm)))
	mux.HandleFunc("GET /views", s.dash(s.viewsPage))
	mux.HandleFunc("POST /alerts/{id}/acknowledge", s.dash(s.acknowledgeForm))
	mux.HandleFunc("GET /reports/self-disconnections", s.dash(s.disconnectionsPage))
	mux.HandleFunc("GET /reports/self-disconnections.csv", s.dash(s.selfDisconnectionsCSV))
	mux.HandleFunc("GET /rollouts/{id}", s.dash(s.rolloutPage))
	// Anything else is a 404 inside the layout (the API's own paths are
	// matched first and answer problem+json).
	mux.HandleFunc("/", s.dash(func(w http.ResponseWriter, r *http.Request, c *Claims) error {
		return flows.Errorf(flows.ENOTFOUND, "there is no page at %s", r.URL.Path)
	}))
}

// securityHeaders are sent with every dashboard page: nothing may frame
// it, scripts and styles come from this server only, forms post here.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// sameSite refuses a form post that may come from another site: by its
// Origin, else its Sec-Fetch-Site, else its Referer; a post that carries
// none of them is refused too (every browser sends one).
func sameSite(r *http.Request) error {
	self := func(u string) bool { return u == "http://"+r.Host || u == "https://"+r.Host }
	switch o, site, ref := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Referer"); {
	case o != "":
		if !self(o) {
			return flows.Errorf(flows.EFORBIDDEN, "cross-site form post refused (Origin %s)", o)
		}
	case site != "":
		if site != "same-origin" {
			return flows.Errorf(flows.EFORBIDDEN, "cross-site form post refused (Sec-Fetch-Site %s)", site)
		}
	case ref != "":
		u, err := url.Parse(ref)
		if err != nil || !self(u.Scheme+"://"+u.Host) {
			return flows.Errorf(flows.EFORBIDDEN, "cross-site form post refused (Referer)")
		}
	default:
		return flows.Errorf(flows.EFORBIDDEN, "form post without Origin, Sec-Fetch-Site or Referer refused")
	}
	return nil
}

// dash wraps a page handler: the session is required (without one the
// login page is shown), form posts must come from this site, and errors
// are shown on a page.
func (s *Server) dash(h func(w http.ResponseWriter, r *http.Request, c *Claims) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		c, err := s.session(r)
		if err != nil {
			if r.Method != http.MethodGet {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			s.render(w, http.StatusOK, "login", page{Title: "Log in"})
			return
		}
		if r.Method == http.MethodPost {
			if err := sameSite(r); err != nil {
				http.Error(w, flows.ErrorMessage(err), http.StatusForbidden)
				return
			}
		}
		if err := h(w, r, c); err != nil {
			status := httpStatus[flows.ErrorCode(err)]
			if status == 0 {
				status = http.StatusInternalServerError
			}
			if flows.ErrorCode(err) == flows.EINTERNAL {
				s.cfg.Logger.Error("dashboard request failed", "path", r.URL.Path, "error", err)
			}
			title := "Something went wrong"
			switch status {
			case http.StatusNotFound:
				title = "Not found"
			case http.StatusBadRequest:
				title = "That request was not understood"
			case http.StatusForbidden:
				title = "Not allowed"
			}
			s.render(w, status, "error", page{Title: title, Claims: c, Flash: flows.ErrorMessage(err)})
		}
	}
}

// session finds the caller's server-side session from its cookie.
func (s *Server) session(r *http.Request) (*Claims, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "no session")
	}
	sess, err := s.cfg.Store.Session(r.Context(), ck.Value)
	if err != nil {
		return nil, err
	}
	c := &Claims{Role: Role(sess.Role), ESCO: sess.ESCO}
	c.Subject, c.ID, c.ExpiresAt = sess.Subject, sess.TokenID, jwt.NewNumericDate(sess.ExpiresAt)
	return c, nil
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.cfg.Logger.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// secure says whether the session cookie must be Secure: the request came
// over TLS, or through a proxy the server trusts that says it did.
func (s *Server) secure(r *http.Request) bool {
	return r.TLS != nil || (s.cfg.TrustProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
}

// login starts a server-side session for a valid API token: the browser
// gets a random session id, never the token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if err := sameSite(r); err != nil { // no logging a victim into the attacker's account
		http.Error(w, flows.ErrorMessage(err), http.StatusForbidden)
		return
	}
	c, err := ParseToken(s.cfg.JWTSecret, strings.TrimSpace(r.PostFormValue("token")), s.cfg.Now())
	if err != nil {
		s.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", Flash: "Token refused: " + flows.ErrorMessage(err)})
		return
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		http.Error(w, "could not start a session", http.StatusInternalServerError)
		return
	}
	id := hex.EncodeToString(raw)
	// A session lasts a working day at most, and never past its token.
	expires := s.cfg.Now().Add(maxSessionAge)
	if c.ExpiresAt.Before(expires) {
		expires = c.ExpiresAt.Time
	}
	if err := s.cfg.Store.CreateSession(r.Context(), id, flows.Session{Subject: c.Subject, Role: string(c.Role), ESCO: c.ESCO,
		TokenID: c.ID, ExpiresAt: expires}); err != nil {
		s.cfg.Logger.Error("starting a dashboard session", "error", err)
		http.Error(w, "could not start a session", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: s.secure(r),
		SameSite: http.SameSiteStrictMode, Expires: expires})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// maxSessionAge bounds a dashboard session, whatever its token's expiry:
// a browser left logged in overnight is logged out.
const maxSessionAge = 12 * time.Hour

// logout ends the session server-side and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if err := sameSite(r); err != nil {
		http.Error(w, flows.ErrorMessage(err), http.StatusForbidden)
		return
	}
	// The cookie is cleared whatever happens to the server-side end.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r),
		SameSite: http.SameSiteStrictMode})
	if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
		if err := s.cfg.Store.DeleteSession(r.Context(), ck.Value); err != nil {
			s.cfg.Logger.Error("ending a dashboard session", "error", err)
			http.Error(w, "the session could not be ended on the server; it expires by itself", http.StatusInternalServerError)
			return
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// back redirects to a meter's page with a message.
func (s *Server) back(w http.ResponseWriter, r *http.Request, serial, msg string) {
	s.redirectWithFlash(w, r, "/meters/"+url.PathEscape(serial), msg)
}

// fleetPageSize is the fleet page's rows a page: the server pages, sorts
// and searches, so 100,000 meters cost what 50 do.
const fleetPageSize = 50

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request, c *Claims) error {
	q := r.URL.Query()
	f := flows.MeterFilter{ESCOCode: scopeESCO(r, c), Query: q.Get("q"), Health: flows.Health(q.Get("health")), Offline: q.Get("offline") == "1",
		Sort: q.Get("sort"), Limit: fleetPageSize}
	if q.Get("low") == "1" {
		five := decimal.NewFromInt(5)
		f.Below = &five
	}
	pageNo := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20 {
			return flows.FieldError("page", "%q is not a page number", v)
		}
		pageNo = n
	}
	f.Offset = (pageNo - 1) * fleetPageSize
	rows, err := s.cfg.Store.MeterRows(r.Context(), f)
	if err != nil {
		return err
	}
	matching, err := s.cfg.Store.CountMeters(r.Context(), f)
	if err != nil {
		return err
	}
	comp, err := s.completenessCells(r.Context(), rows)
	if err != nil {
		return err
	}
	escos, err := s.summaries.get(r.Context(), scopeESCO(r, c), s.cfg.Now(), s.cfg.Store.FleetSummaries)
	if err != nil {
		return err
	}
	var total flows.FleetSummary
	for _, e := range escos {
		total.Meters += e.Meters
		total.Healthy += e.Healthy
		total.Unhealthy += e.Unhealthy
		total.Offline += e.Offline
		total.Stale += e.Stale
		total.LowBalance += e.LowBalance
	}
	s.render(w, http.StatusOK, "fleet", struct {
		page
		Total        flows.FleetSummary
		ESCOs        []flows.FleetSummary
		Rows         []flows.MeterRow
		Completeness []template.HTML // the rows' completeness cells
		Q, Health    string
		Low, Offline bool
		Sort         string
		Columns      []sortColumn
		Pager        pager
	}{page{Title: "Fleet", Claims: c, Flash: s.flash(r)}, total, escos, rows, comp, q.Get("q"), q.Get("health"), q.Get("low") == "1", f.Offline,
		f.Sort, sortColumns(q, f.Sort), newPager(q, pageNo, fleetPageSize, len(rows), matching)})
	return nil
}

// sortColumn is a fleet table heading: a link that sorts by it (again:
// the other way), marked when it is the current order.
type sortColumn struct {
	Label, Title, Href string
	Sorted             string // "", "ascending" or "descending" (aria-sort)
}

func sortColumns(q url.Values, current string) []sortColumn {
	cols := []struct{ key, label, title string }{{"serial", "serial", ""}, {"name", "name", ""}, {"esco", "ESCO", ""}, {"", "mode", ""}, {"", "hardware", ""},
		{"balance", "balance", ""}, {"health", "health", ""}, {"csq", "signal", ""}, {"last_online", "last online", ""},
		{"", "intervals 7 d", "share of expected half hours derived over the last 7 complete UTC days"}, {"", "30 d", "over the last 30 complete UTC days"}}
	out := make([]sortColumn, len(cols))
	for i, col := range cols {
		out[i] = sortColumn{Label: col.label, Title: col.title}
		if col.key == "" {
			continue
		}
		next := col.key
		switch current {
		case col.key:
			out[i].Sorted, next = "ascending", "-"+col.key
		case "-" + col.key:
			out[i].Sorted = "descending"
		}
		if current == "" && col.key == "name" {
			out[i].Sorted, next = "ascending", "-name"
		}
		out[i].Href = withQuery(q, map[string]string{"sort": next, "page": ""})
	}
	return out
}

// pager is the fleet page's position: "51–100 of 1,234" and the links
// before and after, keeping the filters and order.
type pager struct {
	From, To, Of int
	Prev, Next   string
	// Past is the page asked for when it lies beyond the last (an old
	// link, fewer meters now); Prev then goes to the last page.
	Past int
}

func newPager(q url.Values, pageNo, size, rows, matching int) pager {
	p := pager{From: (pageNo-1)*size + 1, To: (pageNo-1)*size + rows, Of: matching}
	if rows == 0 {
		p.From = 0
	}
	if rows == 0 && matching > 0 && pageNo > 1 {
		last := (matching + size - 1) / size
		p.Past, p.Prev = pageNo, withQuery(q, map[string]string{"page": strconv.Itoa(last)})
		return p
	}
	if pageNo > 1 {
		p.Prev = withQuery(q, map[string]string{"page": strconv.Itoa(pageNo - 1)})
	}
	if p.To < matching {
		p.Next = withQuery(q, map[string]string{"page": strconv.Itoa(pageNo + 1)})
	}
	return p
}

// withQuery is the fleet page's link with q's parameters changed by set.
func withQuery(q url.Values, set map[string]string) string { return pageLink("/", q, set) }

// pageLink is path with q's parameters changed by set ("" removes one;
// page 1 is no page), so a link keeps the page's filters and range in the
// URL; the flash message (msg, sig) is not carried on.
func pageLink(path string, q url.Values, set map[string]string) string {
	v := url.Values{}
	for k, vs := range q {
		if k != "msg" && k != "sig" {
			v[k] = vs
		}
	}
	for k, val := range set {
		if val == "" || k == "page" && val == "1" {
			v.Del(k)
		} else {
			v.Set(k, val)
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func (s *Server) meterPage(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.cfg.Store.MeterStatus(ctx, m.Serial)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	rng, err := chartRange(r.URL.Query(), now)
	if err != nil {
		return err
	}
	bal, err := s.cfg.Store.BalanceHistory(ctx, m.ID, rng.from, rng.to, flows.BucketRaw)
	if err != nil {
		return err
	}
	sig, err := s.cfg.Store.SignalHistory(ctx, m.ID, rng.from, rng.to)
	if err != nil {
		return err
	}
	evs, err := s.cfg.Store.MeterEvents(ctx, m.ID, 50)
	if err != nil {
		return err
	}
	lists := map[string]any{}
	for _, l := range meterLists {
		if lists[l], err = s.meterList(ctx, m.ID, l); err != nil {
			return err
		}
	}
	balance := [][2]string{} // chart series, oldest first
	for i := len(bal) - 1; i >= 0; i-- {
		if bal[i].Balance != nil {
			balance = append(balance, [2]string{bal[i].Timestamp.Format(time.RFC3339), bal[i].Balance.String()})
		}
	}
	topups, err := s.topupMarkers(ctx, m.ID, evs, rng.from)
	if err != nil {
		return err
	}
	csq, volt := [][2]string{}, [][2]string{}
	for _, p := range sig {
		if p.CSQ != nil {
			csq = append(csq, [2]string{p.Timestamp.Format(time.RFC3339), fmt.Sprint(*p.CSQ)})
		}
		if p.Voltage != nil {
			volt = append(volt, [2]string{p.Timestamp.Format(time.RFC3339), p.Voltage.String()})
		}
	}
	stale := map[string]bool{}
	for _, g := range st.Stale {
		stale[g] = true
	}
	intervals, err := s.intervalPanel(ctx, m, r.URL.Query())
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, "meter", struct {
		page
		Status                            *flows.MeterStatus
		Stale                             map[string]bool
		Events                            []flows.MeterEvent
		Requests                          any
		BalanceJSON, CSQJSON, VoltageJSON [][2]string
		TopupsJSON                        []string
		Intervals                         *intervalPanel
		Topups, Commands, Audit           any
		Form                              tariffFormValues
		Range                             chartSpan
		Ranges                            []rangeLink
		Forecast                          []forecastRow
	}{page{Title: m.Serial, Claims: c, Flash: s.flash(r)}, st, stale, evs, lists["requests"], balance, csq, volt, topups, intervals,
		lists["topups"], lists["commands"], lists["audit"], prefillTariff(st, now), rng, rangeLinks(r.URL, rng), forecastRows(st.CreditForecast, now)})
	return nil
}

// creditTokenApplied is the event type meters log when they credit a
// token (the reference's).
const creditTokenApplied = 48

// topupMarkers are the balance chart's top-up marks: completed top-ups of
// the ledger, and credit-token events the meter logged with no ledger row
// near them (a token typed in at the meter). Never a jump in the chart:
// a refund or a corrected reading is not a top-up.
func (s *Server) topupMarkers(ctx context.Context, meterID string, evs []flows.MeterEvent, from time.Time) ([]string, error) {
	tus, err := s.cfg.Store.TopupsForMeter(ctx, meterID, from, 500)
	if err != nil {
		return nil, err
	}
	var at []time.Time
	for _, t := range tus {
		if t.Status == flows.TopupCompleted && t.UsedAt != nil {
			at = append(at, *t.UsedAt)
		}
	}
	ledger := len(at)
	for _, e := range evs {
		if e.EventType != creditTokenApplied || e.Timestamp.Before(from) {
			continue
		}
		near := false
		for _, t := range at[:ledger] {
			near = near || e.Timestamp.Sub(t).Abs() < 10*time.Minute
		}
		if !near {
			at = append(at, e.Timestamp)
		}
	}
	out := make([]string, len(at))
	for i, t := range at {
		out[i] = t.UTC().Format(time.RFC3339)
	}
	return out, nil
}

// meterLists are the meter page's lists whose rows move on as pushes go,
// each drawn by the template of its name.
var meterLists = []string{"requests", "topups", "commands", "audit"}

// meterList reads one of them, the same way for the page and for its
// refresh.
func (s *Server) meterList(ctx context.Context, meterID, list string) (any, error) {
	const rows = 20
	switch list {
	case "requests":
		return s.cfg.Store.TariffRequestsForMeter(ctx, meterID, 10)
	case "topups":
		return s.cfg.Store.TopupsForMeter(ctx, meterID, s.cfg.Now().Add(-90*24*time.Hour), rows)
	case "commands":
		return s.cfg.Store.MeterCommandsForMeter(ctx, meterID, rows)
	case "audit":
		return s.cfg.Store.MeterAudit(ctx, meterID, rows)
	}
	return nil, flows.Errorf(flows.ENOTFOUND, "no list %q on the meter page (%s)", list, strings.Join(meterLists, ", "))
}

// listFragment serves one of the meter page's lists on its own, for the
// page to refresh it while pushes move on: the {list} of the path, or the
// tariff requests (/meters/{serial}/requests).
func (s *Server) listFragment(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	list := r.PathValue("list")
	if list == "" {
		list = "requests"
	}
	v, err := s.meterList(r.Context(), m.ID, list)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, list, v)
	return nil
}

func (s *Server) needRole(c *Claims, role Role) error {
	if roleRank[c.Role] < roleRank[role] {
		return flows.Errorf(flows.EFORBIDDEN, "role %s may not do this (needs %s)", c.Role, role)
	}
	return nil
}

// meterForm turns a meter page form's action into a handler. It finds the
// meter (404 outside the caller's scope) and checks the operator role, then
// sends the browser back to the meter page with the action's message. A
// refusal (EINVALID, ECONFLICT, EFORBIDDEN) is shown there as "Refused: …";
// any other error is a failure and renders the error page.
func (s *Server) meterForm(action func(r *http.Request, c *Claims, m *flows.Meter) (string, error)) func(http.ResponseWriter, *http.Request, *Claims) error {
	return func(w http.ResponseWriter, r *http.Request, c *Claims) error {
		m, err := s.meterFor(r, c)
		if err != nil {
			return err
		}
		msg, err := "", s.needRole(c, RoleOperator)
		if err == nil {
			msg, err = action(r, c, m)
		}
		switch flows.ErrorCode(err) {
		case "":
		case flows.EINVALID, flows.ECONFLICT, flows.EFORBIDDEN:
			msg = "Refused: " + flows.ErrorMessage(err)
		default:
			return err
		}
		s.back(w, r, m.Serial, msg)
		return nil
	}
}

func (s *Server) tariffForm(r *http.Request, c *Claims, m *flows.Meter) (string, error) {
	var t flows.Tariff
	for _, f := range []struct {
		name string
		dst  **decimal.Decimal
	}{{"standing_charge", &t.StandingCharge}, {"unit_rate_element_a", &t.UnitRateElementA}, {"unit_rate_element_b", &t.UnitRateElementB},
		{"prepayment_emergency_credit", &t.PrepaymentEmergencyCredit}, {"prepayment_ecredit_availability", &t.PrepaymentECreditAvailability},
		{"prepayment_debt_recovery_rate", &t.PrepaymentDebtRecoveryRate}} {
		d, err := decimal.NewFromString(strings.TrimSpace(r.PostFormValue(f.name)))
		if err != nil {
			return "", flows.FieldError(f.name, "not a decimal amount")
		}
		*f.dst = &d
	}
	act := strings.TrimSpace(r.PostFormValue("activation_datetime"))
	t.ActivationDatetime = &act
	req, err := s.cfg.Store.SetFutureTariff(r.Context(), m.ID, t, "dashboard", c.Subject)
	if err != nil {
		return "", trimPrefix(err, "tariffs_future.")
	}
	return "Tariff request accepted: " + requestStatus(req.Status) + " (its progress is under Requests below)", nil
}

func (s *Server) tokenForm(r *http.Request, c *Claims, m *flows.Meter) (string, error) {
	// The amount is the ledger's (the token carries the meter's own); the
	// meter's balance is what counts. Optional, as in the API.
	var amount *decimal.Decimal
	if a := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("amount")), "£")); a != "" {
		d, err := decimal.NewFromString(a)
		if err != nil {
			return "", flows.FieldError("amount", "%q is not an amount in pounds (such as 10.00)", a)
		}
		amount = &d
	}
	source := r.PostFormValue("source")
	switch source {
	case "", "payment", "gift", "solar_credit", "adjustment":
	default:
		return "", flows.FieldError("source", "%q is not payment, gift, solar_credit or adjustment", source)
	}
	tu, err := s.cfg.Store.CreateTopup(r.Context(), m.ID, strings.TrimSpace(r.PostFormValue("token")), amount, source, c.Subject)
	if err != nil {
		return "", err
	}
	return "Top-up accepted: " + topupStatus(tu.Status) + " (its progress is under Top-ups below)", nil
}

func (s *Server) syncForm(r *http.Request, _ *Claims, m *flows.Meter) (string, error) {
	if s.cfg.SyncNow == nil {
		return "", flows.Errorf(flows.EUNAVAILABLE, "syncing is not available from this server")
	}
	if _, err := m.Address(); err != nil {
		return "", err
	}
	if err := s.cfg.SyncNow(r.Context(), m.ID); err != nil {
		return "", err
	}
	return "Sync queued", nil
}

func (s *Server) viewsPage(w http.ResponseWriter, r *http.Request, c *Claims) error {
	ctx, esco := r.Context(), scopeESCO(r, c)
	low, err := s.cfg.Store.LowBalance(ctx, decimal.NewFromInt(5), esco)
	if err != nil {
		return err
	}
	off, err := s.cfg.Store.OfflineAll(ctx, esco)
	if err != nil {
		return err
	}
	drift, err := s.cfg.Store.ClockDrifts(ctx, esco)
	if err != nil {
		return err
	}
	losing, err := s.cfg.Store.LosingSupply(ctx, 48*time.Hour, esco)
	if err != nil {
		return err
	}
	alerts, err := s.cfg.Store.Alerts(ctx, esco, true, 200)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	s.render(w, http.StatusOK, "views", struct {
		page
		Alerts  []flows.Alert
		CanAck  bool
		Losing  []flows.LosingSupply
		Low     []flows.LowBalance
		Offline []flows.OfflineMeter
		Drift   []flows.ClockDrift
		Past    func(time.Time) bool
	}{page{Title: "Attention", Claims: c, Flash: s.flash(r)}, alerts, s.needRole(c, RoleOperator) == nil, losing, low, off, drift,
		func(t time.Time) bool { return t.Before(now) }})
	return nil
}

func (s *Server) rolloutPage(w http.ResponseWriter, r *http.Request, c *Claims) error {
	ro, err := s.cfg.Store.Rollout(r.Context(), r.PathValue("id"))
	if err != nil {
		return notFoundForBadID(err, "rollout")
	}
	if !ro.VisibleTo(c.ESCO) {
		return flows.Errorf(flows.ENOTFOUND, "rollout not found")
	}
	done := ro.Progress["verified"] + ro.Progress["active"]
	pct := 0
	if ro.Meters > 0 {
		pct = 100 * done / ro.Meters
	}
	s.render(w, http.StatusOK, "rollout", struct {
		page
		Rollout       *flows.Rollout
		Done, Percent int
	}{page{Title: "Rollout", Claims: c}, ro, done, pct})
	return nil
}

// topupStatus says a top-up's status as an operator would.
func topupStatus(s flows.TopupStatus) string {
	switch s {
	case flows.TopupWaiting:
		return "waiting to be sent to the meter"
	case flows.TopupCompleted:
		return "credited on the meter"
	case flows.TopupFailed:
		return "failed: not credited"
	}
	return string(s)
}

// requestStatus says a tariff request's or command's status as an
// operator would.
func requestStatus(s flows.RequestStatus) string {
	switch s {
	case flows.RequestPending:
		return "waiting to be sent"
	case flows.RequestSending:
		return "being sent"
	case flows.RequestSent:
		return "sent, being checked"
	case flows.RequestVerified:
		return "on the meter, confirmed"
	case flows.RequestActive:
		return "in force"
	case flows.RequestFailed:
		return "failed"
	case flows.RequestSuperseded:
		return "replaced by a later request"
	}
	return string(s)
}

// auditKind says what a write to a meter was for.
func auditKind(k string) string {
	switch k {
	case "tariff":
		return "tariff request"
	case "topup":
		return "top-up"
	case "mediator":
		return "a mediator client"
	}
	return "command: " + strings.ReplaceAll(k, "_", " ")
}

// auditOutcome says what the meter made of a write.
func auditOutcome(o string) string {
	switch o {
	case "ok":
		return "accepted"
	case "nak":
		return "refused (NAK)"
	case "error":
		return "no answer"
	}
	return o
}

// tariffFormValues prefill the future-tariff form: the rates the meter
// has now (what an operator changes one of), and the next midnight of
// the meter's clock as the activation.
type tariffFormValues struct {
	StandingCharge, UnitRateA, UnitRateB, EmergencyCredit, ECreditAvailability, DebtRecovery string
	Activation, ActivationZone                                                               string
}

func prefillTariff(st *flows.MeterStatus, now time.Time) tariffFormValues {
	v := tariffFormValues{EmergencyCredit: "15.00", ECreditAvailability: "10.00", DebtRecovery: "0.25"}
	if t := st.Shadow.TariffsActive; t != nil {
		for _, f := range []struct {
			d   *decimal.Decimal
			dst *string
		}{{t.StandingCharge, &v.StandingCharge}, {t.UnitRateElementA, &v.UnitRateA}, {t.UnitRateElementB, &v.UnitRateB},
			{t.PrepaymentEmergencyCredit, &v.EmergencyCredit}, {t.PrepaymentECreditAvailability, &v.ECreditAvailability},
			{t.PrepaymentDebtRecoveryRate, &v.DebtRecovery}} {
			if f.d != nil {
				*f.dst = f.d.String()
			}
		}
	}
	zone := flows.MeterClockZone(st.Meter.DaylightSavingsCorrectionEnabled)
	local := now.In(zone)
	next := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, zone)
	v.Activation = next.Format("2006-01-02T15:04:05")
	v.ActivationZone = "UTC"
	if zone != time.UTC {
		v.ActivationZone = "UK time"
	}
	return v
}

// chartSpan is the meter page's history range: the last 24 h, 7 days (the
// default) or 30 days, or whole UTC days from and to (at most 92).
type chartSpan struct {
	Name     string // 24h, 7d, 30d; "" for from/to
	From, To string // the custom days, YYYY-MM-DD (shown in the form)
	from, to time.Time
}

var chartSpans = []struct {
	name, label string
	d           time.Duration
}{{"24h", "24 h", 24 * time.Hour}, {"7d", "7 days", 7 * 24 * time.Hour}, {"30d", "30 days", 30 * 24 * time.Hour}}

func chartRange(q url.Values, now time.Time) (chartSpan, error) {
	if q.Get("from") != "" || q.Get("to") != "" {
		from, err := flows.ParseDay("from", q.Get("from"))
		if err != nil {
			return chartSpan{}, err
		}
		to, err := flows.ParseDay("to", cmp.Or(q.Get("to"), flows.FormatDay(now)))
		if err != nil {
			return chartSpan{}, err
		}
		switch {
		case to.Before(from):
			return chartSpan{}, flows.FieldError("to", "%s is before from %s", flows.FormatDay(to), flows.FormatDay(from))
		case flows.DaysBetween(from, to) > 92:
			return chartSpan{}, flows.FieldError("to", "at most 92 days of history at once")
		}
		return chartSpan{From: flows.FormatDay(from), To: flows.FormatDay(to), from: from, to: to.Add(24 * time.Hour)}, nil
	}
	name := cmp.Or(q.Get("range"), "7d")
	for _, sp := range chartSpans {
		if sp.name == name {
			return chartSpan{Name: name, From: flows.FormatDay(now.Add(-sp.d)), To: flows.FormatDay(now), from: now.Add(-sp.d), to: now.Add(time.Minute)}, nil
		}
	}
	return chartSpan{}, flows.FieldError("range", "%q is not 24h, 7d or 30d", name)
}

// rangeLink is one of the range picker's choices.
type rangeLink struct {
	Label, Href string
	Current     bool
}

func rangeLinks(u *url.URL, cur chartSpan) []rangeLink {
	var out []rangeLink
	for _, sp := range chartSpans {
		href := pageLink(u.Path, u.Query(), map[string]string{"from": "", "to": "", "range": sp.name})
		out = append(out, rangeLink{Label: sp.label, Href: href, Current: cur.Name == sp.name})
	}
	return out
}

// auditValue is a write's value as an operator reads it: the object's
// payload decoded (amounts in pounds, times, settings), or as recorded
// when it is not a payload (a redacted token) or does not decode.
func auditValue(object, value string) string {
	o, ok := emop.LookupName(object)
	b, err := hex.DecodeString(value)
	if !ok || err != nil || len(b) == 0 {
		return value
	}
	v, err := emop.DecodeValue(o, b)
	if err != nil || v == nil {
		return value
	}
	text, ok := v.(string)
	if !ok {
		j, err := json.Marshal(v)
		if err != nil {
			return value
		}
		text = string(j)
	}
	switch o.Type {
	case emop.TypeMoney, emop.TypeBalance:
		return "£" + text
	case emop.TypeEpoch, emop.TypeClock:
		return strings.Replace(strings.TrimSuffix(text, "Z"), "T", " ", 1) // the meter's clock time
	}
	return text
}

// activationText is a tariff's activation as the page writes times: an
// instant in UTC ("2026-12-04 00:00:00Z"), a meter-clock time without
// the Z, and the meter's "none" (its epoch, 2000-01-01 00:00) as such.
func activationText(s string) string {
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		if t.Equal(emop.Epoch) {
			return "none set"
		}
		return t.Format("2006-01-02 15:04:05") + " (the meter's clock)"
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	return s
}
