package main_test

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flows serve refuses a mediator open to the network without mutual TLS,
// saying which flags would do; --grpc-insecure serves it, with a warning.
func TestServeMediatorRefusesOpenAddress(t *testing.T) {
	url := pgtest.NewDB(t)
	out, err := exec.Command(flowsBin, "serve", "--components", "mediator", "--grpc", "0.0.0.0:0", "--database-url", url).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("serve on 0.0.0.0 without TLS: %v, want a usage error (exit 2)\n%s", err, out)
	}
	for _, want := range []string{"flows: --grpc: 0.0.0.0:0 is not a loopback address", "--grpc-cert, --grpc-key and --grpc-ca", "--grpc-insecure"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}

	cmd := exec.Command(flowsBin, "serve", "--components", "mediator", "--grpc", "0.0.0.0:0", "--grpc-insecure", "--database-url", url)
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := func() bool { return strings.Contains(buf.String(), "flows serving mediator") }
	for deadline := time.Now().Add(30 * time.Second); !started() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !started() {
		t.Fatalf("serve --grpc-insecure did not start:\n%s", buf.String())
	}
	if s := buf.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "anyone who can reach") || !strings.Contains(s, "prepay_token_send included") {
		t.Errorf("no warning that the mediator is open:\n%s", s)
	}
}
