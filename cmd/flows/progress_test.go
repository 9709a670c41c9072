package main_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/flows-energy/flows/internal/pgtest"
)

// openPTY opens a pseudo-terminal pair: what the child writes to the
// terminal end is read from the other.
func openPTY(t *testing.T) (ours, terminal *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty %d: %v", n, err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal, `flows meter import` draws a progress bar of the meters
// written, ending at 100% before its result line; piped, it prints the
// result alone.
func TestMeterImportShowsProgressOnATerminal(t *testing.T) {
	url := pgtest.NewDB(t)
	var entries []string
	for i := range 300 {
		entries = append(entries, fmt.Sprintf(`{"serial": "EML31000%05d", "ip_address": "127.95.%d.%d"}`, i, i/250, i%250+1))
	}
	file := filepath.Join(t.TempDir(), "meters.json")
	if err := os.WriteFile(file, []byte(`{"meters": [`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	ours, terminal := openPTY(t)
	cmd := exec.Command(flowsBin, "meter", "import", file, "--database-url", url)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = terminal, terminal, terminal
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, ours); close(read) }() // ends with EIO once no one holds the terminal
	err := cmd.Wait()
	terminal.Close()
	<-read
	out := strings.ReplaceAll(screen.String(), "\r\n", "\n")
	if err != nil {
		t.Fatalf("import on a terminal: %v\n%s", err, out)
	}
	bar := strings.LastIndex(out, "meters written [==============================] 100% 300/300")
	result := strings.Index(out, "imported 300 meters: 300 new, 0 updated")
	if bar < 0 || result < bar {
		t.Errorf("on a terminal, want the bar at 100%% and then the result; the screen:\n%q", out)
	}

	// Piped: no bar, only the result.
	again, err := flowsCmd(t, "meter", "import", file, "--database-url", url)
	if err != nil || strings.Contains(again, "meters written") || !strings.Contains(again, "imported 300 meters: 0 new, 300 updated") {
		t.Errorf("piped import: %v\n%s", err, again)
	}
}
