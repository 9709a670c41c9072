package flows

import "time"

// DayLayout is how a UTC day is written wherever Flows takes one
// (API parameters, flows export smip): YYYY-MM-DD.
const DayLayout = "2006-01-02"

// ParseDay reads a UTC day (YYYY-MM-DD) and returns its midnight, UTC.
// EINVALID naming field when s is not a valid day.
func ParseDay(field, s string) (time.Time, error) {
	d, err := time.Parse(DayLayout, s)
	if err != nil {
		return time.Time{}, FieldError(field, "%q is not a day (YYYY-MM-DD)", s)
	}
	return d.UTC(), nil
}

// UTCDay returns the midnight (UTC) that starts the UTC day of t.
func UTCDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// DaysBetween counts the UTC days from the day of from to the day of to,
// both included (0 when to's day is before from's).
func DaysBetween(from, to time.Time) int {
	n := int(UTCDay(to).Sub(UTCDay(from))/(24*time.Hour)) + 1
	return max(n, 0)
}

// FormatDay writes t's UTC day as YYYY-MM-DD.
func FormatDay(t time.Time) string { return t.UTC().Format(DayLayout) }
