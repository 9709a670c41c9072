package http

import (
	"context"
	"time"

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
