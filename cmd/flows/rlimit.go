package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit raises the soft open-file limit to the hard limit (each
// meter in flight is a TCP connection, and the default soft limit of 1024
// caps a node far below its fleet) and returns the soft limit now in force,
// saying so when it is still below want.
func raiseFileLimit(log *slog.Logger, want int) int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		log.Warn("reading the open-file limit", "error", err)
		return 0
	}
	if r.Cur < r.Max {
		raised := r
		raised.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("raising the open-file limit", "soft", r.Cur, "hard", r.Max, "error", err)
		} else {
			r = raised
		}
	}
	soft := int(min(r.Cur, 1<<30))
	if soft < want {
		log.Warn("the open-file limit bounds the meters in flight: raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit)",
			"limit", soft, "wanted", want)
	}
	return soft
}
