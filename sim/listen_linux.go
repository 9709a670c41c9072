package sim

import (
	"context"
	"net"
	"strconv"
	"syscall"
)

// listenLoopback listens on port of every loopback address at once: the
// wildcard address, bound to the loopback device so that nothing from
// another interface reaches it.
func listenLoopback(ctx context.Context, port int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo")
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	return lc.Listen(ctx, "tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
}
