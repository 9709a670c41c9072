package flows

import (
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// AlertKind is what an alert rule watches each of its ESCO's meters for
// (migration 0032).
type AlertKind string

// Alert kinds, with what their threshold means.
const (
	AlertLowBalance       AlertKind = "low_balance"       // balance under Threshold GBP
	AlertLosingSupply     AlertKind = "losing_supply"     // supply forecast to be cut within Threshold hours
	AlertSelfDisconnected AlertKind = "self_disconnected" // off supply for lack of credit (no threshold)
	AlertOffline          AlertKind = "offline"           // last online more than Threshold hours ago
	AlertClockDrift       AlertKind = "clock_drift"       // clock more than Threshold seconds off
	AlertPushFailed       AlertKind = "push_failed"       // the newest top-up or tariff push failed (no threshold)
)

// AlertKinds are the kinds a rule may have, in the order the API lists them.
var AlertKinds = []AlertKind{AlertLowBalance, AlertLosingSupply, AlertSelfDisconnected, AlertOffline, AlertClockDrift, AlertPushFailed}

// thresholded says whether a kind takes a threshold, and its unit.
func (k AlertKind) thresholded() (unit string, ok bool) {
	switch k {
	case AlertLowBalance:
		return "GBP", true
	case AlertLosingSupply, AlertOffline:
		return "hours", true
	case AlertClockDrift:
		return "seconds", true
	}
	return "", false
}

// AlertRule is one ESCO's rule: a condition on each of its meters and the
// webhook its episodes are delivered to (none: the dashboard and
// Prometheus only). The secret signs deliveries and is never shown.
type AlertRule struct {
	ID         string           `json:"id"`
	ESCO       string           `json:"esco"`
	Name       string           `json:"name"`
	Kind       AlertKind        `json:"kind"`
	Threshold  *decimal.Decimal `json:"threshold"`
	WebhookURL string           `json:"webhook_url,omitempty"`
	Enabled    bool             `json:"enabled"`
	CreatedBy  string           `json:"created_by"`
	CreatedAt  time.Time        `json:"created_at"`
	Firing     int              `json:"firing"` // episodes firing now
}

// NewAlertRule is what a rule is made from.
type NewAlertRule struct {
	ESCO          string           `json:"esco"`
	Name          string           `json:"name"`
	Kind          AlertKind        `json:"kind"`
	Threshold     *decimal.Decimal `json:"threshold"`
	WebhookURL    string           `json:"webhook_url"`
	WebhookSecret string           `json:"webhook_secret"`
	Enabled       *bool            `json:"enabled"` // default true
}

// Validate checks a new rule, naming the field that is wrong.
func (r *NewAlertRule) Validate() error {
	if strings.TrimSpace(r.Name) == "" || len(r.Name) > 200 {
		return FieldError("name", "a rule needs a name of 1 to 200 characters")
	}
	known := false
	for _, k := range AlertKinds {
		known = known || r.Kind == k
	}
	if !known {
		return FieldError("kind", "%q is not low_balance, losing_supply, self_disconnected, offline, clock_drift or push_failed", r.Kind)
	}
	unit, takes := r.Kind.thresholded()
	switch {
	case takes && r.Threshold == nil:
		return FieldError("threshold", "a %s rule needs a threshold (%s)", r.Kind, unit)
	case takes && !r.Threshold.IsPositive():
		return FieldError("threshold", "%s is not above 0 %s", r.Threshold, unit)
	case takes && r.Threshold.GreaterThan(decimal.NewFromInt(1_000_000)):
		return FieldError("threshold", "%s %s is more than a million", r.Threshold, unit)
	case !takes && r.Threshold != nil:
		return FieldError("threshold", "a %s rule takes no threshold", r.Kind)
	}
	if r.WebhookURL != "" {
		u, err := url.Parse(r.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return FieldError("webhook_url", "%q is not an http or https URL", r.WebhookURL)
		}
		if len(r.WebhookSecret) < 16 {
			return FieldError("webhook_secret", "a webhook needs a secret of at least 16 characters to sign its deliveries")
		}
	} else if r.WebhookSecret != "" {
		return FieldError("webhook_secret", "a secret without a webhook_url")
	}
	return nil
}

// Alert is one episode of a rule: a meter that entered its condition
// (fired at StartedAt) and, once it left, ResolvedAt.
type Alert struct {
	ID             string     `json:"id"`
	RuleID         string     `json:"rule_id"`
	RuleName       string     `json:"rule_name"`
	Kind           AlertKind  `json:"kind"`
	ESCO           string     `json:"esco"`
	Serial         string     `json:"serial"`
	MeterName      string     `json:"meter_name"`
	Detail         string     `json:"detail"`
	StartedAt      time.Time  `json:"started_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
}

// AlertDelivery is one webhook delivery owed for an episode's event
// ("fired", "resolved"), with its attempts so far.
type AlertDelivery struct {
	Seq           int64      `json:"seq"`
	AlertID       string     `json:"alert_id"`
	Event         string     `json:"event"`
	CreatedAt     time.Time  `json:"created_at"`
	Attempts      int        `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

// WebhookDelivery is one delivery owed, with what it is sent and where.
type WebhookDelivery struct {
	Seq       int64
	Event     string
	Alert     Alert
	Threshold *string
	URL       string
	Secret    string
	Delivered bool
	// Behind says an earlier delivery for the same meter is not made yet:
	// deliveries go in order per meter.
	Behind bool
}
