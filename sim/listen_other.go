//go:build !linux

package sim

import (
	"context"
	"errors"
	"net"
)

// listenLoopback is Linux-only: elsewhere a wildcard listener cannot be
// kept to the loopback device.
func listenLoopback(context.Context, int) (net.Listener, error) {
	return nil, errors.New("shared listeners need Linux (SO_BINDTODEVICE); serve fewer meters with one listener each")
}
