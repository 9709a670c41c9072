package command

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

func TestPolicy(t *testing.T) {
	pol := policy{maxAttempts: 3, retryBase: 30 * time.Second}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	unreachable := &meterconn.CommError{Kind: "unreachable", Attempts: 3, Err: errors.New("connection refused")}
	nak := &emop.NakError{Code: 6}

	t.Run("a communication failure retries with a doubling backoff", func(t *testing.T) {
		for attempts, wait := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute} {
			d := pol.decide(fromError("", unreachable), attempts, now)
			if d.to != flows.RequestPending || d.next.Sub(now) != wait || d.detail != "unreachable" {
				t.Errorf("attempt %d: %+v, want pending in %v saying unreachable", attempts, d, wait)
			}
		}
	})
	t.Run("the attempt limit fails and says so", func(t *testing.T) {
		d := pol.decide(fromError("", unreachable), 3, now)
		if d.to != flows.RequestFailed || !d.exhausted || !d.next.IsZero() || !strings.Contains(d.detail, "after 3 attempts: unreachable") {
			t.Errorf("exhausted: %+v", d)
		}
	})
	t.Run("a NAK fails at once", func(t *testing.T) {
		d := pol.decide(fromError("", nak), 1, now)
		if d.to != flows.RequestFailed || d.exhausted || !strings.HasPrefix(d.detail, "NAK 6") {
			t.Errorf("NAK: %+v", d)
		}
	})
	t.Run("a NAK wrapped in exhausted attempts is a communication failure", func(t *testing.T) {
		d := pol.decide(fromError("", &meterconn.CommError{Kind: "protocol", Attempts: 3, Err: nak}), 1, now)
		if d.to != flows.RequestPending {
			t.Errorf("comm error around a NAK: %+v", d)
		}
	})
	t.Run("an input that cannot be written fails with its reason", func(t *testing.T) {
		d := pol.decide(fromError("", flows.FieldError("value", "bad")), 1, now)
		if d.to != flows.RequestFailed || d.detail != "value: bad" {
			t.Errorf("bad input: %+v", d)
		}
	})
	t.Run("a mediator down on the way to the meter keeps the request, retried, and says why", func(t *testing.T) {
		down := flows.Errorf(flows.EUNAVAILABLE, "mediator unavailable: connection refused")
		d := pol.decide(fromError("", down), 1, now)
		if d.to != flows.RequestPending || d.next.Sub(now) != 30*time.Second || !strings.Contains(d.detail, "mediator unavailable") {
			t.Errorf("mediator down: %+v, want pending in 30 s naming the mediator", d)
		}
	})
	t.Run("a shutdown mid-push records nothing and uses no attempt", func(t *testing.T) {
		if o := fromError("", context.Canceled); o.result != resultStopped {
			t.Errorf("canceled: %+v", o)
		}
	})
	t.Run("the backoff is capped at an hour", func(t *testing.T) {
		long := policy{maxAttempts: 100, retryBase: 30 * time.Second}
		if d := long.decide(retry("x"), 40, now); d.next.Sub(now) != time.Hour {
			t.Errorf("attempt 40 waits %v", d.next.Sub(now))
		}
	})
	t.Run("done and wait keep their status and time", func(t *testing.T) {
		o := done(flows.RequestVerified, "ok")
		o.next = now.Add(time.Hour)
		if d := pol.decide(o, 9, now); d.to != flows.RequestVerified || !d.next.Equal(now.Add(time.Hour)) || d.detail != "ok" {
			t.Errorf("done: %+v", d)
		}
	})
}

// The recorder writes what the meter reported before the status, and logs
// (does not drop) a status it cannot write.
func TestRecorderObservesThenRecords(t *testing.T) {
	var calls []string
	st := &fakeStore{calls: &calls}
	rec := recorder{policy: policy{maxAttempts: 3, retryBase: time.Second}, store: st, now: time.Now, log: discard()}
	bal := flows.ShadowUpdate{}
	o := done(flows.RequestVerified, "note")
	o.observed = &bal
	rec.record(context.Background(), pushed{kind: "topup", id: "t1", meterID: "m1", attempts: 1}, o.at(flows.RequestSent),
		func(_ context.Context, from flows.RequestStatus, d decision) (bool, error) {
			calls = append(calls, "move "+string(from)+"->"+string(d.to))
			return true, nil
		})
	if strings.Join(calls, "; ") != "shadow m1; move sent->verified" {
		t.Errorf("calls: %v", calls)
	}
	calls = nil
	rec.record(context.Background(), pushed{kind: "tariff", id: "t2", meterID: "m1", attempts: 1}, stopped(),
		func(context.Context, flows.RequestStatus, decision) (bool, error) {
			calls = append(calls, "move")
			return true, nil
		})
	if len(calls) != 0 {
		t.Errorf("a stopped push recorded %v", calls)
	}
}
