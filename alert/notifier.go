// Package alert evaluates the ESCOs' alert rules and delivers their
// episodes to webhooks. Every EvaluateEvery the notifier asks the store
// to evaluate every rule once (episodes opened and resolved in the
// database, each change owed to the rule's webhook in an outbox table)
// and queues a River job for every delivery not yet made; River's unique
// jobs make queueing again harmless, so a delivery whose job was lost
// (a crash after the evaluation, attempts run out while the receiver was
// down) is queued again at the next evaluation. A job posts the
// delivery's JSON, signed with the rule's secret (HMAC-SHA256 of the body
// in X-Flows-Signature), and records each attempt in the delivery log;
// a receiver's answer other than 2xx is retried with a backoff capped at
// MaxBackoff. Deliveries go in order per meter: one waits while an
// earlier one for the same meter is not made. A receiver may see a
// delivery twice (a crash between its 2xx and the record of it); the
// delivery's id (the episode's id and the event) is the same each time.
package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/lifecycle"
	"github.com/flows-energy/flows/internal/riverlog"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the River queue webhook deliveries are worked in.
const Queue = "alerts"

// DefaultMaxAttempts is how many attempts a delivery's job makes before
// it is left to the next evaluation to queue again.
const DefaultMaxAttempts = 25

// Store is what the notifier needs of the database (postgres.Store).
type Store interface {
	EvaluateAlerts(ctx context.Context) ([]int64, error)
	PendingDeliveries(ctx context.Context, limit int) ([]int64, error)
	WebhookDelivery(ctx context.Context, seq int64) (*flows.WebhookDelivery, error)
	RecordDeliveryAttempt(ctx context.Context, seq int64, status int, errText string, delivered bool) error
}

// JobQueue is the River client the notifier queues and works its jobs
// with (postgres.Store.NewQueueClient).
type JobQueue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Config configures a Notifier.
type Config struct {
	Store    Store
	NewQueue func(cfg *river.Config) (JobQueue, error)
	// EvaluateEvery is how often every rule is evaluated (30 s).
	EvaluateEvery time.Duration
	// Timeout bounds one webhook request (10 s).
	Timeout time.Duration
	// MaxBackoff caps the wait between a delivery's attempts (5 min): a
	// receiver down for an hour hears of everything within minutes of
	// coming back.
	MaxBackoff time.Duration
	// MaxAttempts is how many attempts a delivery's job makes before River
	// discards it (DefaultMaxAttempts: about 1 h 42 min of retries at the
	// default backoff); the next evaluation queues the delivery again, so
	// no outage loses one.
	MaxAttempts int
	Client      *http.Client // nil: one with Timeout
	Logger      *slog.Logger
	// OnEvaluated, if set, is called after each evaluation (tests).
	OnEvaluated func(owed int)
}

// Notifier evaluates alert rules and delivers their episodes.
type Notifier struct {
	cfg    Config
	client JobQueue
	loop   lifecycle.Loop
}

// New makes a Notifier; it does nothing until Start.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil || cfg.NewQueue == nil {
		return nil, errors.New("alert: Store and NewQueue are required")
	}
	if cfg.EvaluateEvery <= 0 {
		cfg.EvaluateEvery = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg}
	workers := river.NewWorkers()
	river.AddWorker(workers, &deliveryWorker{n: n})
	client, err := cfg.NewQueue(&river.Config{
		Queues:        map[string]river.QueueConfig{Queue: {MaxWorkers: 8}},
		Workers:       workers,
		MaxAttempts:   cfg.MaxAttempts,
		Logger:        riverlog.Logger(cfg.Logger),
		JobTimeout:    2 * cfg.Timeout,
		RetryPolicy:   &backoff{max: cfg.MaxBackoff},
		FetchCooldown: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("alert queue: %w", err)
	}
	n.client = client
	return n, nil
}

// Start starts working deliveries and evaluating rules.
func (n *Notifier) Start(ctx context.Context) error {
	if err := n.client.Start(ctx); err != nil {
		return err
	}
	n.loop.Start(ctx, n.run)
	return nil
}

// Stop stops evaluating, then lets the deliveries in progress finish
// (bounded by ctx); those not made stay owed.
func (n *Notifier) Stop(ctx context.Context) error {
	return errors.Join(n.loop.Stop(ctx), n.client.Stop(ctx))
}

func (n *Notifier) run(ctx context.Context) {
	t := time.NewTicker(n.cfg.EvaluateEvery)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, n.cfg.EvaluateEvery)
		owed, err := n.evaluate(ictx)
		cancel()
		if err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("evaluating alert rules", "error", err)
		}
		if n.cfg.OnEvaluated != nil {
			n.cfg.OnEvaluated(owed)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// EvaluateNow evaluates every rule once and queues what it owes, as the
// notifier does every EvaluateEvery (tests, and an operator's
// "evaluate now").
func (n *Notifier) EvaluateNow(ctx context.Context) error {
	_, err := n.evaluate(ctx)
	return err
}

// evaluate evaluates the rules once and queues every delivery not yet
// made; it returns how many are owed.
func (n *Notifier) evaluate(ctx context.Context) (int, error) {
	fresh, err := n.cfg.Store.EvaluateAlerts(ctx)
	if err != nil {
		return 0, err
	}
	if len(fresh) > 0 {
		n.cfg.Logger.Info("alert episodes changed", "deliveries", len(fresh))
	}
	pending, err := n.cfg.Store.PendingDeliveries(ctx, 10000)
	if err != nil {
		return 0, err
	}
	var params []river.InsertManyParams
	for _, seq := range pending {
		params = append(params, river.InsertManyParams{Args: deliveryArgs{Seq: seq},
			InsertOpts: &river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByArgs: true}}})
	}
	for len(params) > 0 {
		k := min(len(params), 1000)
		if _, err := n.client.InsertMany(ctx, params[:k]); err != nil {
			return len(pending), fmt.Errorf("queue alert deliveries: %w", err)
		}
		params = params[k:]
	}
	return len(pending), nil
}

// deliveryArgs is one webhook delivery's job.
type deliveryArgs struct {
	Seq int64 `json:"seq"`
}

// Kind implements river.JobArgs.
func (deliveryArgs) Kind() string { return "alert_delivery" }

type deliveryWorker struct {
	river.WorkerDefaults[deliveryArgs]
	n *Notifier
}

// Payload is the JSON a webhook receives.
type Payload struct {
	// ID is the delivery's identity, the same on every attempt
	// ("<episode id>:fired" or ":resolved"): a receiver de-duplicates by it.
	ID        string      `json:"id"`
	Event     string      `json:"event"` // fired, resolved
	Alert     flows.Alert `json:"alert"`
	Threshold *string     `json:"threshold"`
	Sequence  int64       `json:"sequence"` // increasing per Flows database: orders a meter's deliveries
	SentAt    time.Time   `json:"sent_at"`
}

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the rule's secret.
const SignatureHeader = "X-Flows-Signature"

// Sign returns the signature header's value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[deliveryArgs]) error {
	st := w.n.cfg.Store
	d, err := st.WebhookDelivery(ctx, job.Args.Seq)
	if flows.ErrorCode(err) == flows.ENOTFOUND {
		return river.JobCancel(err) // its rule deleted
	}
	if err != nil {
		return err
	}
	if d.Delivered || d.URL == "" {
		return nil
	}
	if d.Behind {
		return river.JobSnooze(2 * time.Second) // an earlier one for the meter first
	}
	body, err := json.Marshal(Payload{ID: d.Alert.ID + ":" + d.Event, Event: d.Event, Alert: d.Alert, Threshold: d.Threshold,
		Sequence: d.Seq, SentAt: time.Now().UTC()})
	if err != nil {
		return river.JobCancel(err)
	}
	rctx, cancel := context.WithTimeout(ctx, w.n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		_ = st.RecordDeliveryAttempt(ctx, d.Seq, 0, err.Error(), false)
		return river.JobCancel(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Flows-Alerts/1")
	req.Header.Set(SignatureHeader, Sign(d.Secret, body))
	req.Header.Set("X-Flows-Delivery", strconv.FormatInt(d.Seq, 10))
	req.Header.Set("X-Flows-Event", d.Event)
	resp, err := w.n.cfg.Client.Do(req)
	status, failure := 0, ""
	if err != nil {
		failure = err.Error()
	} else {
		status = resp.StatusCode
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if status/100 != 2 {
			failure = fmt.Sprintf("the receiver answered %s", resp.Status)
		}
	}
	if err := st.RecordDeliveryAttempt(context.WithoutCancel(ctx), d.Seq, status, failure, failure == ""); err != nil {
		return err
	}
	if failure != "" {
		w.n.cfg.Logger.Info("alert delivery failed; retrying", "alert", d.Alert.ID, "event", d.Event, "meter_serial", d.Alert.Serial, "attempt", job.Attempt, "error", failure)
		return errors.New(failure)
	}
	return nil
}

// backoff waits attempt² × 5 s between attempts, at most max.
type backoff struct{ max time.Duration }

func (b *backoff) NextRetry(job *rivertype.JobRow) time.Time {
	n := time.Duration(max(job.Attempt, 1))
	return time.Now().Add(min(n*n*5*time.Second, b.max))
}
