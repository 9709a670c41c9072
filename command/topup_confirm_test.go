package command

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// A sent token is credited when the balance rose and the meter recorded
// it: its transaction count rising, or, when the count did not, a newer
// credit-token event; otherwise it failed, saying which record is
// missing. The event log is not asked for when the count rose.
func TestConfirmTopupByTheMetersRecords(t *testing.T) {
	d := decimal.RequireFromString
	before := meterCounts{balance: d("3.10"), txCount: 4, tokenSet: 7, eventsRead: true}
	for _, c := range []struct {
		name   string
		after  meterCounts
		result result
		note   string
	}{
		{"count rose", meterCounts{balance: d("23.10"), txCount: 5}, resultDone, "Balance increased: 3.10 -> 23.10; transaction count 4 -> 5"},
		{"count held, event logged", meterCounts{balance: d("23.10"), txCount: 4, tokenSet: 8, eventsRead: true}, resultDone,
			"Balance increased: 3.10 -> 23.10; credit-token event 48 (set 8) logged"},
		{"count held, no new event", meterCounts{balance: d("23.10"), txCount: 4, tokenSet: 7, eventsRead: true}, resultFailed,
			"Balance increased (3.10 -> 23.10) but the meter recorded no credit"},
		{"count held, event log unreadable", meterCounts{balance: d("23.10"), txCount: 4, tokenSet: 9, eventsRead: true, eventErr: errors.New("NAK")}, resultFailed,
			"recorded no credit"},
		{"balance fell", meterCounts{balance: d("3.05"), txCount: 5}, resultFailed, "Balance did not increase: 3.10 -> 3.05"},
	} {
		o := confirmTopup(before, c.after)
		if o.result != c.result || !strings.Contains(o.detail, c.note) {
			t.Errorf("%s: %v %q, want %v %q", c.name, o.result, o.detail, c.result, c.note)
		}
		if o.balance == nil || !o.balance.Equal(c.after.balance) {
			t.Errorf("%s: the balance read after (%s) is not kept: %v", c.name, c.after.balance, o.balance)
		}
	}
}
