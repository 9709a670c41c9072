package http

import (
	"net/http"
	"strconv"

	"github.com/flows-energy/flows"
)

// alertRulesView is the list of an ESCO's alert rules.
type alertRulesView struct {
	Rules []flows.AlertRule `json:"rules"`
}

// alertsView is a list of alert episodes.
type alertsView struct {
	Alerts []flows.Alert `json:"alerts"`
}

// alertDeliveriesView is an episode's delivery log.
type alertDeliveriesView struct {
	Deliveries []flows.AlertDelivery `json:"deliveries"`
}

// alertRulePatch is what PATCH changes of a rule.
type alertRulePatch struct {
	Enabled *bool `json:"enabled"`
}

func (s *Server) listAlertRules(w http.ResponseWriter, r *http.Request, c *Claims) error {
	rules, err := s.cfg.Store.AlertRules(r.Context(), scopeESCO(r, c))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertRulesView{Rules: rules})
	return nil
}

// createAlertRule makes a rule for the caller's ESCO (an admin names one).
func (s *Server) createAlertRule(w http.ResponseWriter, r *http.Request, c *Claims) error {
	var nr flows.NewAlertRule
	if err := decode(r, &nr); err != nil {
		return err
	}
	if c.ESCO != "" {
		if nr.ESCO != "" && !c.sees(nr.ESCO) {
			return flows.FieldError("esco", "%q is not your ESCO (%s)", nr.ESCO, c.ESCO)
		}
		nr.ESCO = c.ESCO
	}
	rule, err := s.cfg.Store.CreateAlertRule(r.Context(), nr, c.Subject)
	if flows.ErrorCode(err) == flows.ENOTFOUND {
		return flows.FieldError("esco", "%s", err.Error())
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rule)
	return nil
}

func (s *Server) patchAlertRule(w http.ResponseWriter, r *http.Request, c *Claims) error {
	var p alertRulePatch
	if err := decode(r, &p); err != nil {
		return err
	}
	if p.Enabled == nil {
		return flows.FieldError("enabled", "nothing to change: send enabled true or false")
	}
	rule, err := s.cfg.Store.SetAlertRuleEnabled(r.Context(), r.PathValue("id"), scopeESCO(r, c), *p.Enabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rule)
	return nil
}

// listAlerts lists episodes, firing ones by default (state=all: every
// one, newest first; limit, default 100, at most 1000).
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, c *Claims) error {
	q := r.URL.Query()
	firing := true
	switch v := q.Get("state"); v {
	case "", "firing":
	case "all":
		firing = false
	default:
		return flows.FieldError("state", "%q is not firing or all", v)
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return flows.FieldError("limit", "%q is not a whole number from 1 to 1000", v)
		}
		limit = n
	}
	alerts, err := s.cfg.Store.Alerts(r.Context(), scopeESCO(r, c), firing, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertsView{Alerts: alerts})
	return nil
}

func (s *Server) acknowledgeAlert(w http.ResponseWriter, r *http.Request, c *Claims) error {
	a, err := s.cfg.Store.AcknowledgeAlert(r.Context(), r.PathValue("id"), scopeESCO(r, c), c.Subject)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) alertDeliveries(w http.ResponseWriter, r *http.Request, c *Claims) error {
	id := r.PathValue("id")
	esco := scopeESCO(r, c)
	if _, err := s.cfg.Store.Alert(r.Context(), id, esco); err != nil {
		return err
	}
	ds, err := s.cfg.Store.AlertDeliveries(r.Context(), id, esco)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertDeliveriesView{Deliveries: ds})
	return nil
}

// acknowledgeForm acknowledges an alert from the Attention page (an
// operator's; another ESCO's is not found) and goes back there.
func (s *Server) acknowledgeForm(w http.ResponseWriter, r *http.Request, c *Claims) error {
	msg := "Acknowledged"
	err := s.needRole(c, RoleOperator)
	if err == nil {
		_, err = s.cfg.Store.AcknowledgeAlert(r.Context(), r.PathValue("id"), scopeESCO(r, c), c.Subject)
	}
	switch flows.ErrorCode(err) {
	case "":
	case flows.EFORBIDDEN:
		msg = "Refused: " + flows.ErrorMessage(err)
	default:
		return err
	}
	s.redirectWithFlash(w, r, "/views", msg)
	return nil
}
