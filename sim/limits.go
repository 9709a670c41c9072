package sim

import "fmt"

// What a large fleet needs of its process.
const (
	// ConnectionRoom is the open files a fleet keeps for connections when
	// it decides how to listen: several thousand requests in flight, as a
	// sync engine working a large fleet at cellular latency has.
	ConnectionRoom = 4096
	// spareFiles is what the process opens besides meters and
	// connections (standard streams, the state and registry files, the
	// runtime's poller).
	spareFiles = 64
	// MemoryLimit is the soft memory limit flows sim runs under unless
	// GOMEMLIMIT says otherwise: the 2 GiB a 100,000-meter fleet is to
	// fit in, less room for what the Go runtime does not count. Without
	// it the collector lets the heap grow to twice what is live (about
	// 1 GiB for such a fleet) before it collects.
	MemoryLimit = 1792 << 20
)

// Listening is how a fleet binds its meters' addresses.
type Listening string

// Ways to listen.
const (
	// ListenAuto: a listener per meter when they fit the open-file limit
	// (ListenersFit), shared listeners otherwise.
	ListenAuto Listening = "auto"
	// ListenPerMeter: a listener (a file and a goroutine) per meter.
	ListenPerMeter Listening = "per-meter"
	// ListenShared: one listener per port on every loopback address
	// (Fleet.SetShared).
	ListenShared Listening = "shared"
)

// FilesPerMeter is the open files a fleet of served meters with a
// listener each needs, with room for ConnectionRoom connections.
func FilesPerMeter(served int) int { return served + ConnectionRoom + spareFiles }

// ListenersFit reports whether served meters can have a listener each
// under an open-file limit: with room for ConnectionRoom connections
// besides, or with at least half the limit left for connections (a small
// fleet under a small limit needs no more).
func ListenersFit(served, fileLimit int) bool {
	return FilesPerMeter(served) <= fileLimit || 2*(served+spareFiles) <= fileLimit
}

// PlanListening decides whether a fleet of served meters listens shared
// under an open-file limit (the soft limit, already raised as far as it
// goes): ListenAuto picks per-meter listeners when they fit; asking for
// per-meter listeners that do not fit is an error that says what the
// limit would have to be. warning, when not empty, says that the limit
// leaves fewer connections than ConnectionRoom (the fleet still works;
// connections beyond wait in the kernel's queue).
func PlanListening(mode Listening, served, fileLimit int) (shared bool, warning string, err error) {
	switch mode {
	case ListenAuto, "":
		shared = !ListenersFit(served, fileLimit)
	case ListenPerMeter:
		if !ListenersFit(served, fileLimit) {
			need := min(FilesPerMeter(served), 2*(served+spareFiles))
			return false, "", fmt.Errorf("a listener for each of %d meters, with room for connections, needs %d open files and the limit is %d: raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit) or listen shared",
				served, need, fileLimit)
		}
	case ListenShared:
		shared = true
	default:
		return false, "", fmt.Errorf("%q is not auto, per-meter or shared", mode)
	}
	if room := fileLimit - spareFiles; shared && room < ConnectionRoom {
		warning = fmt.Sprintf("the open-file limit %d leaves room for about %d connections at once, not %d: raise the hard limit (ulimit -Hn)", fileLimit, max(room, 0), ConnectionRoom)
	}
	return shared, warning, nil
}
