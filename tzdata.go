package flows

// Embed the time zone database so UK local time conversions work on machines
// without /usr/share/zoneinfo; meter clock conventions depend on it.
import _ "time/tzdata"
