package http

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/prometheus/client_golang/prometheus"
)

// Gauges is what the fleet collector reads at each scrape.
type Gauges interface {
	HealthCounts(ctx context.Context) (map[string]int, error)
	QueueDepth(ctx context.Context) (map[string]int, error)
}

// fleetCollector reports meters by health and job-queue depth, read from
// the database when Prometheus scrapes.
type fleetCollector struct {
	g              Gauges
	health, queued *prometheus.Desc
}

// NewFleetCollector returns a collector of meters by health and queue depth.
func NewFleetCollector(g Gauges) prometheus.Collector {
	return &fleetCollector{g: g,
		health: prometheus.NewDesc("flows_meters", "Active meters by health.", []string{"health"}, nil),
		queued: prometheus.NewDesc("flows_queue_jobs", "Job-queue jobs by state.", []string{"state"}, nil)}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.health; ch <- c.queued }

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if h, err := c.g.HealthCounts(ctx); err == nil {
		for k, v := range h {
			ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, float64(v), k)
		}
	}
	if q, err := c.g.QueueDepth(ctx); err == nil {
		for k, v := range q {
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(v), k)
		}
	}
}

// MeterRequests counts EMOP requests by kind and result; it implements
// meterconn.Observer.
type MeterRequests struct{ c *prometheus.HistogramVec }

// NewMeterRequests registers the EMOP request metric.
func NewMeterRequests(reg *prometheus.Registry) *MeterRequests {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flows_meter_request_duration_seconds",
		Help:    "EMOP requests to meters by kind (read, write, raw) and result (ok, nak, timeout, unreachable, crc, busy...).",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"kind", "result"})
	reg.MustRegister(h)
	return &MeterRequests{c: h}
}

// ObserveRequest records one request.
func (m *MeterRequests) ObserveRequest(kind, result string, d time.Duration) {
	m.c.WithLabelValues(kind, result).Observe(d.Seconds())
}

// SyncResults counts meter syncs by outcome.
type SyncResults struct{ c *prometheus.CounterVec }

// NewSyncResults registers the sync outcome metric.
func NewSyncResults(reg *prometheus.Registry) *SyncResults {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flows_syncs_total", Help: "Meter syncs by outcome (ok, or the failure detail)."}, []string{"outcome"})
	reg.MustRegister(c)
	return &SyncResults{c: c}
}

// Observe records one sync's outcome.
func (s *SyncResults) Observe(outcome string) {
	if outcome == "" {
		outcome = "ok"
	}
	s.c.WithLabelValues(outcome).Inc()
}

// ReplicaStatuses is what the replica collector reads at each scrape.
type ReplicaStatuses interface {
	ReplicaStatuses(ctx context.Context) ([]flows.ReplicaStatus, error)
}

// replicaCollector reports, per replica database, the outbox entries
// waiting for it, how often in a row it refused the one it is stuck on,
// and how many entries were quarantined: a replica that stops taking
// updates shows here, not only in the log.
type replicaCollector struct {
	s                              ReplicaStatuses
	backlog, refusals, quarantined *prometheus.Desc
}

// NewReplicaCollector returns the collector of replication gauges.
func NewReplicaCollector(s ReplicaStatuses) prometheus.Collector {
	l := []string{"replica"}
	return &replicaCollector{s: s,
		backlog:     prometheus.NewDesc("flows_replica_backlog", "Outbox entries waiting for the replica.", l, nil),
		refusals:    prometheus.NewDesc("flows_replica_refusals", "Refused attempts in a row at the entry the replica is stuck on (0: none).", l, nil),
		quarantined: prometheus.NewDesc("flows_replica_quarantined", "Outbox entries set aside after repeated refusals.", l, nil)}
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.refusals
	ch <- c.quarantined
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sts, err := c.s.ReplicaStatuses(ctx)
	if err != nil {
		return
	}
	for _, s := range sts {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.Backlog), s.Replica)
		ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.GaugeValue, float64(s.FailingAttempts), s.Replica)
		ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.GaugeValue, float64(s.Quarantined), s.Replica)
	}
}

// AlertGauges is what the alert collector reads at each scrape.
type AlertGauges interface {
	AlertRules(ctx context.Context, escoCode string) ([]flows.AlertRule, error)
	AlertDeliveriesOwed(ctx context.Context) (owed int, oldest time.Duration, err error)
}

// alertCollector reports, per alert rule, the episodes firing now, and
// the webhook deliveries owed: what Prometheus alerts on (the rules in
// deploy/prometheus/flows-alerts.yml) without reading the dashboard.
type alertCollector struct {
	g                    AlertGauges
	firing, owed, oldest *prometheus.Desc
}

// NewAlertCollector returns the collector of alert gauges.
func NewAlertCollector(g AlertGauges) prometheus.Collector {
	return &alertCollector{g: g,
		firing: prometheus.NewDesc("flows_alerts_firing", "Meters in an enabled alert rule's condition now (its episodes firing).", []string{"esco", "rule", "kind"}, nil),
		owed:   prometheus.NewDesc("flows_alert_deliveries_owed", "Webhook deliveries of alert episodes not made yet.", nil, nil),
		oldest: prometheus.NewDesc("flows_alert_delivery_oldest_seconds", "Age of the oldest webhook delivery not made yet (0: none).", nil, nil)}
}

func (c *alertCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.firing
	ch <- c.owed
	ch <- c.oldest
}

func (c *alertCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rules, err := c.g.AlertRules(ctx, ""); err == nil {
		for _, r := range rules {
			if r.Enabled {
				ch <- prometheus.MustNewConstMetric(c.firing, prometheus.GaugeValue, float64(r.Firing), r.ESCO, r.Name, string(r.Kind))
			}
		}
	}
	if n, age, err := c.g.AlertDeliveriesOwed(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.owed, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds())
	}
}
