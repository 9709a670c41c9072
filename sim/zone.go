package sim

import (
	"time"
	_ "time/tzdata" // meters' UK local time must not depend on the host's zone files
)

var ukZone = func() *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		panic(err)
	}
	return l
}()
