package alert

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// At the production settings a delivery's job keeps retrying a receiver
// that is down for more than an hour before River gives it up (and the
// next evaluation queues it again: TestWebhookDownLongerThanItsRetries),
// and once the receiver is back it is tried again within five minutes.
func TestRetriesOutlastAnHourLongOutage(t *testing.T) {
	b := &backoff{max: 5 * time.Minute}
	var total, longest time.Duration
	for attempt := 1; attempt < DefaultMaxAttempts; attempt++ {
		start := time.Now()
		wait := b.NextRetry(&rivertype.JobRow{Attempt: attempt}).Sub(start)
		total += wait
		longest = max(longest, wait)
	}
	if total < time.Hour || longest > 5*time.Minute+time.Second {
		t.Errorf("%d attempts span %v with waits of up to %v; want over an hour, each wait at most 5 min", DefaultMaxAttempts, total.Round(time.Second), longest.Round(time.Second))
	}
}
